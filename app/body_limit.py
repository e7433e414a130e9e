"""Request bodies bounded, and authenticated, before a byte of them is read (pure ASGI).

FastAPI reads and parses a request's body before it resolves any dependency, authentication
included: without this layer an anonymous client could make the service buffer any amount of
data, and a 100 MB `PUT /v1/keys/…` was read in full. Here, for a request that carries a body:

1. on an authenticated route, the bearer token is verified first (the principal is computed
   through the request scope, so the endpoint reuses it): a bad or missing token is the
   standard 401 and the body is never read;
2. a `Content-Length` above the route's limit is a 413 at once;
3. a body without a length (chunked) is counted as it is received; past the limit the app's
   own answer is discarded and a 413 sent instead (the app sees the read fail).

It must sit inside `RequestScopeMiddleware` (it uses the request's scope).
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyscope.app.errors import AppError, BodyTooLarge
from keyscope.app.problems import problem

Authenticate = Callable[[], Any | Awaitable[Any]]


class BodyLimitMiddleware:
    """Per-path-prefix body limits (the first matching prefix wins) and auth before body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Sequence[tuple[str, int]],
        default_limit: int,
        authenticate: Authenticate | None = None,
        authenticated_prefixes: Sequence[str] = ("/v1/",),
        only_prefixes: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self._limits = list(limits)
        self._default = default_limit
        self._authenticate = authenticate
        self._protected = tuple(authenticated_prefixes)
        # When embedded in another app: its own routes are none of this layer's business.
        self._only = tuple(only_prefixes) if only_prefixes is not None else None

    def limit_for(self, path: str) -> int:
        for prefix, limit in self._limits:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        has_body = (length is not None and length.strip() != b"0") or (
            b"transfer-encoding" in headers
        )
        path: str = scope["path"]
        if not has_body or (self._only is not None and not path.startswith(self._only)):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(path)
        declared = int(length) if length is not None and length.strip().isdigit() else None
        if self._authenticate is not None and path.startswith(self._protected):
            try:
                principal = self._authenticate()
                if isinstance(principal, Awaitable):
                    await principal
            except AppError as exc:
                # A small announced body is discarded (never buffered) first: closing with
                # unread data makes the peer's TCP stack reset and lose our answer. A large
                # or unannounced one is not waited for.
                drained = declared is not None and declared <= limit and await _drain(receive)
                await _answer(exc, scope, receive, send, close=not drained)
                return
        if length is not None and (declared is None or declared > limit):
            await _answer(_too_large(limit), scope, receive, send)
            return
        await self._counted(limit, scope, receive, send)

    async def _counted(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        overflow = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, overflow
            if overflow:
                raise _too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise _too_large(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflow:
                return  # the app's answer to a body it could not read; ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not started:
            await _answer(_too_large(limit), scope, receive, send)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"This route accepts request bodies of at most {limit} bytes.")


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of the body; False if the client went away."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        if not message.get("more_body", False):
            return True


async def _answer(
    exc: AppError, scope: Scope, receive: Receive, send: Send, *, close: bool = True
) -> None:
    response = problem(exc.status, exc.slug, exc.title, exc.detail, exc.headers)
    if close:  # the body is left unread: this connection is done
        response.headers["Connection"] = "close"
    await response(scope, receive, send)
