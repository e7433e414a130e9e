"""App-lifetime HTTP resources shared by every provider client, and the helpers they share.

Why one of each per process: building an `ssl.SSLContext` loads the CA bundle (tens of ms), and a
connection pool is only useful if it outlives a request. Provider clients are built per request
with the caller's key and borrow these; they never close them. `SharedHttp.aclose()` is for the
application's shutdown.
"""

import asyncio
import contextlib
import email.utils
import math
import ssl
import time
from collections.abc import AsyncIterator
from types import TracebackType

import httpx

from keyscope.providers import ProviderName
from keyscope.providers.errors import KeyRejected, ProviderError, Unavailable, UpstreamTimeout


class SharedHttp:
    """One pooled `httpx.AsyncClient`, one sync `httpx.Client` and one SSL context per process.

    The sync client exists because google-genai builds its own (and a fresh SSL context with
    it) unless it is handed both a sync and an async client; only the SDK's sync surface
    (legacy code in worker threads) sends on it. Both clients are safe to share across tasks
    and threads respectively.

    Redirects are not followed: provider keys travel in custom headers (`x-goog-api-key`,
    `x-api-key`) that httpx, unlike `Authorization`, would carry to another origin.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        write_timeout: float = 30.0,
        pool_timeout: float = 5.0,
        max_connections: int = 256,
        max_keepalive_connections: int = 64,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        deadline: float = 60.0,
        stream_idle: float = 30.0,
        stream_deadline: float = 600.0,
    ) -> None:
        # httpx's timeouts bound each read, so a trickled answer could take forever: `deadline`
        # bounds a whole call (connect, send, the complete answer; for a stream, its headers).
        self.deadline = deadline
        self.stream_idle = stream_idle
        self.stream_deadline = stream_deadline
        self.timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
        )
        self.limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
        # httpx's helper: certifi's bundle, plus SSL_CERT_FILE / SSL_CERT_DIR when set.
        self.ssl_context = ssl_context or httpx.create_ssl_context()
        self.async_client = httpx.AsyncClient(
            verify=self.ssl_context,
            timeout=self.timeout,
            limits=self.limits,
            follow_redirects=False,
        )
        self.sync_client = httpx.Client(
            verify=self.ssl_context,
            timeout=self.timeout,
            limits=self.limits,
            follow_redirects=False,
        )

    @property
    def request_timeout_ms(self) -> int:
        """The read timeout in milliseconds, for SDKs that take one number per request.

        google-genai passes its own `timeout` to every request, and `None` there would switch
        the shared client's timeouts off, so GeminiClient always sets this.
        """
        return max(1, math.ceil((self.timeout.read or 0) * 1000))

    @property
    def is_closed(self) -> bool:
        return self.async_client.is_closed

    async def aclose(self) -> None:
        """Close both pools; provider clients built on them stop working."""
        await self.async_client.aclose()
        self.sync_client.close()

    async def __aenter__(self) -> "SharedHttp":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"SharedHttp({state}, timeout={self.timeout!r})"


def require_header_safe_key(provider: ProviderName, key: str) -> str:
    """Refuse a key no HTTP header can carry, before any request is built.

    Without this check an empty key makes google-genai fall back to the process environment
    (`GOOGLE_API_KEY`, the operator's key), and a key with a newline makes the HTTP library
    raise an error whose message quotes the header value: the key.
    """
    # Visible ASCII only (0x21-0x7e), checked with str methods: this runs on every request.
    if not key or not key.isascii() or not key.isprintable() or " " in key:
        raise KeyRejected(provider, "the key is empty or holds characters a header cannot carry")
    return key


MIN_FRAGMENT = 6


def redact(text: str, secret: str, *, limit: int = 200) -> str:
    """Upstream text we may quote in errors, with every fragment of `secret` removed.

    Upstreams echo keys whole, or a tail ("...ab12cd34ef"), a head or a middle slice: every
    run of text that matches any substring of the key of MIN_FRAGMENT characters or more
    (case-insensitively) becomes `[redacted]`. A key shorter than that cannot be told apart
    from ordinary text, so the upstream text is dropped altogether.
    """
    if secret and len(secret) < MIN_FRAGMENT:
        return ""
    if secret:
        grams = {secret[i : i + MIN_FRAGMENT].lower() for i in range(len(secret) - 5)}
        lowered = text.lower()
        hidden = bytearray(len(text))
        for i in range(len(text) - MIN_FRAGMENT + 1):
            if lowered[i : i + MIN_FRAGMENT] in grams:
                hidden[i : i + MIN_FRAGMENT] = b"\x01" * MIN_FRAGMENT
        pieces: list[str] = []
        for i, ch in enumerate(text):
            if not hidden[i]:
                pieces.append(ch)
            elif i == 0 or not hidden[i - 1]:
                pieces.append("[redacted]")
        text = "".join(pieces)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after_seconds(headers: httpx.Headers) -> int | None:
    """Parse `Retry-After` (delta-seconds or an HTTP date) into whole seconds, if present."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return int(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0, math.ceil(when.timestamp() - time.time()))


@contextlib.asynccontextmanager
async def deadline(provider: ProviderName, seconds: float) -> AsyncIterator[None]:
    """Bound everything inside to `seconds` in total; past it, UpstreamTimeout (a 504)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise UpstreamTimeout(provider, f"no complete answer within {seconds:g} s") from None


def error_for_transport(provider: ProviderName, exc: httpx.HTTPError) -> ProviderError:
    """Translate an httpx failure that happened before an upstream status arrived.

    Messages name the failure class only: httpx's own messages may quote URLs or headers.
    """
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(provider, f"no answer in time ({type(exc).__name__})")
    return Unavailable(provider, f"upstream unreachable ({type(exc).__name__})")
