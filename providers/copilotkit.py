"""Copilot Cloud runtime proxy: the caller's publishable key on a streamed pass-through.

No SDK: the runtime is one POST endpoint, and the key (`ck_pub_…`) is publishable, so the only
care needed is to stream the answer through without buffering it and to close the upstream
response when the body is done (or abandoned).
"""

from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import httpx

from keyscope.providers import ProviderName
from keyscope.providers.errors import ProviderError, error_for_status
from keyscope.providers.http import (
    SharedHttp,
    error_for_transport,
    redact,
    require_header_safe_key,
    retry_after_seconds,
)

DEFAULT_RUNTIME_URL = "https://api.cloud.copilotkit.ai/copilotkit/v1"
KEY_HEADER = "X-CopilotCloud-Public-Api-Key"

_PROVIDER = ProviderName.COPILOTKIT

# Only end-to-end headers that describe the body. Hop-by-hop ones (connection,
# transfer-encoding) belong to the upstream connection, and content-length/-encoding no longer
# hold once httpx has decoded the body and the service re-chunks it.
_FORWARDED_RESPONSE_HEADERS = ("content-type", "cache-control", "content-language")

# How much of an error body we read to quote it; the rest is discarded unread.
_ERROR_BODY_LIMIT = 4096


class UpstreamStream:
    """A 2xx upstream response whose body has not been read yet.

    Iterate it (once) for the body's chunks as they arrive; the upstream response is closed
    when iteration ends, fails or is abandoned. Call `aclose()` (or use `async with`) when the
    body may never be iterated, e.g. as a StreamingResponse background task.
    """

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
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
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            # The status line is already sent; the service can only cut the body short.
            raise error_for_transport(_PROVIDER, exc) from None
        finally:
            await self._response.aclose()

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
        return UpstreamStream(response)

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
