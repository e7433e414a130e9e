"""Binds the legacy overlay to the request scope: managed names read the request's UserKeys.

`LegacyEnvMiddleware` (pure ASGI, inside `RequestScopeMiddleware`) resolves the caller's
`UserKeys` for every request that carries a bearer token, so legacy code anywhere in the app
needs no change. Resolving loads the user's *encrypted* records (from the per-process cache,
else one query) and is the same task the route's own dependencies await, so the load still
happens at most once per request; nothing is decrypted until a managed name is read.

A key handed to legacy code is a use of that key, as an injected client is: when the request
ends, each provider whose key the overlay returned is counted once (`UsageTracker.record`, in
memory like the injected path), with the origin of the key read, unless an injected client of
that provider already counted the request (app/clients.py). The read itself only notes the
provider in a dict.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from keyscope.app.awaitables import awaited
from keyscope.app.clients import key_origin
from keyscope.app.errors import AppError, OutsideRequestScope
from keyscope.app.keys.policy import KeyOrigin
from keyscope.app.scope import current_scope_or_none
from keyscope.providers import ProviderName

if TYPE_CHECKING:
    from keyscope.app.keys.usage import UsageTracker
    from keyscope.app.keys.user_keys import ResolvedKey, UserKeys
    from keyscope.app.legacy.overlay import KeySource
    from keyscope.containers import Container

_SOURCE_SLOT = object()  # where the request's KeySource lives in its RequestScope


class NoKeys:
    """The KeySource of a request without a (valid) token: every managed name is absent.

    One per request, never shared: the overlay keeps request-local env writes per source."""

    __slots__ = ("__weakref__",)

    def secret_for(self, provider: ProviderName) -> str | None:  # noqa: ARG002  # the protocol's signature
        return None


class ReadKeys:
    """The KeySource of an authenticated request: its UserKeys, noting each provider whose key
    was handed out (and the key's origin) so that the request counts as one use of it."""

    __slots__ = ("__weakref__", "_get", "_quota_bound", "read", "user_id")

    def __init__(self, keys: "UserKeys", quota_bound: frozenset[ProviderName]) -> None:
        self.user_id = keys.user_id
        self._get: Callable[[ProviderName], ResolvedKey | None] = keys.get
        # Providers whose platform key is rationed by KEYSCOPE_PLATFORM_QUOTA: taking a unit
        # is a database statement, which os.getenv cannot wait for, so legacy code gets no
        # platform key for them (fail closed) rather than one the quota never counted.
        self._quota_bound = quota_bound
        self.read: dict[ProviderName, ResolvedKey] = {}

    def secret_for(self, provider: ProviderName) -> str | None:
        resolved = self._get(provider)
        if resolved is None:
            return None
        if resolved.origin is KeyOrigin.PLATFORM and provider in self._quota_bound:
            return None
        self.read[provider] = resolved  # a dict store: the read path stays in memory
        return resolved.secret.reveal()

    def count(self, usage: "UsageTracker") -> None:
        """Record one use per provider read, unless an injected client already counted it."""
        for provider, resolved in self.read.items():
            if key_origin(provider) is None:
                usage.record(self.user_id, provider, resolved.origin)


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
        quota = container.platform_quota()  # its limits are settings: read once
        self._quota_bound = frozenset(p for p in ProviderName if quota.applies_to(p))

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
                source = ReadKeys(keys, self._quota_bound)
                request.provide(_SOURCE_SLOT, source)
                try:
                    await self.app(scope, receive, send)
                finally:
                    source.count(self.container.usage())
                return
        await self.app(scope, receive, send)
