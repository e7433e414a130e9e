"""Binds the legacy overlay to the request scope: managed names read the request's UserKeys.

`LegacyEnvMiddleware` (pure ASGI, inside `RequestScopeMiddleware`) resolves the caller's
`UserKeys` for every request that carries a bearer token, so legacy code anywhere in the app
needs no change. Resolving loads the user's *encrypted* records (from the per-process cache,
else one query) and is the same task the route's own dependencies await, so the load still
happens at most once per request; nothing is decrypted until a managed name is read.
"""

from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from keyscope.app.awaitables import awaited
from keyscope.app.errors import AppError, OutsideRequestScope
from keyscope.app.scope import current_scope_or_none
from keyscope.providers import ProviderName

if TYPE_CHECKING:
    from keyscope.app.legacy.overlay import KeySource
    from keyscope.containers import Container

_SOURCE_SLOT = object()  # where the request's KeySource lives in its RequestScope


class NoKeys:
    """The KeySource of a request without a (valid) token: every managed name is absent.

    One per request, never shared: the overlay keeps request-local env writes per source."""

    __slots__ = ("__weakref__",)

    def secret_for(self, provider: ProviderName) -> str | None:  # noqa: ARG002  # the protocol's signature
        return None


def current_source() -> "KeySource | None":
    """The running request's KeySource, or None outside any request (the overlay's hook)."""
    scope = current_scope_or_none()
    if scope is None:
        return None
    try:
        source: KeySource = scope.local(_SOURCE_SLOT, NoKeys)
    except OutsideRequestScope:
        # A task that outlived its request: treated as outside any request. This hook runs
        # inside os.getenv, where an exception would break the legacy code instead.
        return None
    return source


class LegacyEnvMiddleware:
    """Binds the caller's UserKeys as the request's KeySource before the route runs."""

    def __init__(self, app: ASGIApp, container: "Container") -> None:
        self.app = app
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = current_scope_or_none()
        if scope["type"] == "http" and request is not None and request.bearer_token():
            try:
                keys = await awaited(self.container.user_keys())
            except AppError:
                # Bad token, database down: legacy reads see nothing; the route's own
                # dependencies report the error if the route needs the keys.
                pass
            else:
                request.provide(_SOURCE_SLOT, keys)
        await self.app(scope, receive, send)
