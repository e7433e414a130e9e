"""Copilot Cloud runtime proxy: the caller's publishable key on a streamed pass-through.

No SDK: the runtime is one POST endpoint, and the key (`ck_pub_…`) is publishable, so the only
care needed is to stream the answer through without buffering it and to close the upstream
response when the body is done (or abandoned).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import httpx

from keyscope.providers import ProviderName
from keyscope.providers.errors import ProviderError, UpstreamTimeout, error_for_status
from keyscope.providers.http import (
    SharedHttp,
    deadline,
    error_for_transport,
    redact,
    require_header_safe_key,
    retry_after_seconds,
)

DEFAULT_RUNTIME_URL = "https://api.cloud.copilotkit.ai/copilotkit/v1"
KEY_HEADER = "X-CopilotCloud-Public-Api-Key"
# Copilot Cloud's documented prefix for its publishable (browser-safe) keys.
PUBLISHABLE_PREFIX = "ck_pub_"


def is_publishable(key: str) -> bool:
    return key.startswith(PUBLISHABLE_PREFIX) and len(key) > len(PUBLISHABLE_PREFIX)


_PROVIDER = ProviderName.COPILOTKIT

# Only end-to-end headers that describe the body. Hop-by-hop ones (connection,
# transfer-encoding) belong to the upstream connection, and content-length/-encoding no longer
# hold once httpx has decoded the body and the service re-chunks it.
_FORWARDED_RESPONSE_HEADERS = ("content-type", "cache-control", "content-language")

# How much of an error body we read to quote it; the rest is discarded unread.
_ERROR_BODY_LIMIT = 4096


class StreamAborted(Exception):
    """The upstream stream failed after its status line was sent: raised out of the body so
    the server closes the connection without the final chunk. The client sees an incomplete
    response (an error), never an ending that looks complete."""


class UpstreamStream:
    """A 2xx upstream response whose body has not been read yet.

    Iterate it (once) for the body's chunks as they arrive; the upstream response is closed
    when iteration ends, fails or is abandoned. Call `aclose()` (or use `async with`) when the
    body may never be iterated, e.g. as a StreamingResponse background task.

    Bounded twice: no more than `idle` seconds between chunks and `total` seconds in all. A
    stream that stalls or breaks ends with, for server-sent events, a final `event: error`
    whose data is a problem object, and then `StreamAborted`.
    """

    def __init__(
        self, response: httpx.Response, *, idle: float = 30.0, total: float = 600.0
    ) -> None:
        self._response = response
        self._idle = idle
        self._total = total
        self.status_code = response.status_code
        self.headers: Mapping[str, str] = {
            name: response.headers[name]
            for name in _FORWARDED_RESPONSE_HEADERS
            if name in response.headers
        }

    @property
    def media_type(self) -> str | None:
        return self.headers.get("content-type")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self._total
        chunks = self._response.aiter_bytes().__aiter__()
        failure: ProviderError | None = None
        try:
            while True:
                wait = min(self._idle, ends_at - loop.time())
                try:
                    async with asyncio.timeout(max(wait, 0)):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    failure = UpstreamTimeout(_PROVIDER, "the stream stalled or ran too long")
                    break
                except httpx.HTTPError as exc:
                    failure = error_for_transport(_PROVIDER, exc)
                    break
                yield chunk
        finally:
            await self._response.aclose()
        assert failure is not None  # the loop only breaks after setting it
        if "text/event-stream" in (self.media_type or ""):
            yield _error_event(failure)
        raise StreamAborted(str(failure))

    async def aclose(self) -> None:
        await self._response.aclose()

    @property
    def is_closed(self) -> bool:
        return self._response.is_closed

    async def __aenter__(self) -> "UpstreamStream":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"UpstreamStream(status_code={self.status_code}, closed={self.is_closed})"


class CopilotKitClient:
    """The caller's Copilot Cloud public key, sent in `X-CopilotCloud-Public-Api-Key`."""

    def __init__(self, public_key: str, *, runtime_url: str | None, http: SharedHttp) -> None:
        self._public_key = require_header_safe_key(_PROVIDER, public_key)
        self.runtime_url = runtime_url or DEFAULT_RUNTIME_URL
        self._http = http

    @property
    def public_key(self) -> str:
        """Publishable by design (Copilot Cloud ships it to browsers): safe to return."""
        return self._public_key

    async def stream(
        self, body: bytes, content_type: str, *, accept: str = "*/*"
    ) -> UpstreamStream:
        """POST `body` to the runtime; returns once the upstream status and headers arrive.

        A non-2xx status is translated and raised here, before anything is streamed, so the
        service can still answer with a problem response.
        """
        client = self._http.async_client
        request = client.build_request(
            "POST",
            self.runtime_url,
            content=body,
            headers={"content-type": content_type, "accept": accept, KEY_HEADER: self._public_key},
        )
        try:
            async with deadline(_PROVIDER, self._http.deadline):
                response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise error_for_transport(_PROVIDER, exc) from None
        try:
            if not 200 <= response.status_code < 300:
                raise await self._error_for(response)
        except BaseException:
            # Also on cancellation: an unreturned response would hold its pooled connection.
            await response.aclose()
            raise
        return UpstreamStream(
            response, idle=self._http.stream_idle, total=self._http.stream_deadline
        )

    async def _error_for(self, response: httpx.Response) -> ProviderError:
        head = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= _ERROR_BODY_LIMIT:
                    break
        except httpx.HTTPError:
            pass  # the status is what matters; the body was only for the message
        text = head[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace").strip()
        return error_for_status(
            _PROVIDER,
            response.status_code,
            retry_after=retry_after_seconds(response.headers),
            upstream_detail=redact(text, self._public_key) if text else None,
        )

    def __repr__(self) -> str:
        # The key is publishable, but reprs end up in logs next to secret ones: keep the habit.
        return f"CopilotKitClient(runtime_url={self.runtime_url!r}, public_key=<redacted>)"


def _error_event(failure: ProviderError) -> bytes:
    """The last server-sent event of a broken stream: says why, as a problem object."""
    problem = {
        "type": "https://keyscope.dev/problems/provider-" + type(failure).__name__.lower(),
        "title": failure.title,
        "status": failure.status,
        "detail": str(failure),
    }
    return f"event: error\ndata: {json.dumps(problem)}\n\n".encode()
