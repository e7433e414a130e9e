"""Provider clients built for one request, and the note of whose key each one holds.

Every client is built here from the request's `UserKeys`, and the same step notes on the
response whose key served it: `X-Keyscope-Key-Origin: user|platform`. Every route that injects
a provider client gets the header, the app's own routes and yours alike, with no dependency
of its own. A request that used several providers gets `exa=user, gemini=platform`.

The same step counts the use (`UsageTracker.record`: in memory, flushed off the request path)
and, when the operator's key serves under `KEYSCOPE_PLATFORM_QUOTA`, takes one unit of the
user's daily allowance first (one database statement: the only case where building a client
waits).
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from keyscope.app.awaitables import MaybeAwaitable
from keyscope.app.keys.policy import KeyOrigin
from keyscope.app.keys.quota import PlatformQuota
from keyscope.app.keys.records import StoredKey
from keyscope.app.keys.usage import UsageTracker
from keyscope.app.keys.user_keys import ResolvedKey, UserKeys
from keyscope.app.scope import current_scope_or_none
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

KEY_ORIGIN_HEADER = "X-Keyscope-Key-Origin"
_HEADER_NAME = KEY_ORIGIN_HEADER.lower().encode("latin-1")
_SINGLE = {origin: origin.value.encode("latin-1") for origin in KeyOrigin}  # prebuilt values
_ORIGINS = object()  # the request's {provider: origin}, kept in its RequestScope
_KEYS_USED = object()  # the UserKeys the request's clients were built from

C = TypeVar("C")


def gemini_for(
    keys: UserKeys, http: SharedHttp, base_url: str, usage: UsageTracker, quota: PlatformQuota
) -> MaybeAwaitable[GeminiClient]:
    key = _key_for(keys, ProviderName.GEMINI, usage, quota)
    return _built(lambda k: GeminiClient(k, base_url=base_url, http=http), key)


def exa_for(
    keys: UserKeys, http: SharedHttp, base_url: str, usage: UsageTracker, quota: PlatformQuota
) -> MaybeAwaitable[ExaClient]:
    key = _key_for(keys, ProviderName.EXA, usage, quota)
    return _built(lambda k: ExaClient(k, base_url=base_url, http=http), key)


def copilotkit_for(
    keys: UserKeys, http: SharedHttp, runtime_url: str, usage: UsageTracker, quota: PlatformQuota
) -> MaybeAwaitable[CopilotKitClient]:
    key = _key_for(keys, ProviderName.COPILOTKIT, usage, quota)
    return _built(lambda k: CopilotKitClient(k, runtime_url=runtime_url, http=http), key)


def served_own_key(provider: ProviderName) -> StoredKey | None:
    """The stored record whose key this request's `provider` client holds, if the user's own."""
    scope = current_scope_or_none()
    keys = scope.local(_KEYS_USED, _none) if scope is not None else None
    return keys.served_own_key(provider) if isinstance(keys, UserKeys) else None


def _none() -> None:
    return None


def key_origin(provider: ProviderName) -> KeyOrigin | None:
    """The origin of the key this request's `provider` client was built with, if one was."""
    scope = current_scope_or_none()
    if scope is None:
        return None
    origins = scope.local(_ORIGINS, _no_origins)
    return origins.get(provider)


def _no_origins() -> dict[ProviderName, KeyOrigin]:
    return {}


def _key_for(
    keys: UserKeys, provider: ProviderName, usage: UsageTracker, quota: PlatformQuota
) -> MaybeAwaitable[str]:
    """The plaintext key a client is built with; notes on the response whose key it is and
    counts the use. Awaitable only when the platform key serves under a quota."""
    resolved = keys.require(provider)
    _note_key_origin(keys, provider, resolved.origin)
    if resolved.origin is KeyOrigin.PLATFORM and quota.applies_to(provider):
        return _within_quota(keys, provider, resolved, usage, quota)
    usage.record(keys.user_id, provider, resolved.origin)
    return resolved.secret.reveal()


async def _within_quota(
    keys: UserKeys,
    provider: ProviderName,
    resolved: ResolvedKey,
    usage: UsageTracker,
    quota: PlatformQuota,
) -> str:
    await quota.consume(keys.user_id, provider)
    usage.record(keys.user_id, provider, resolved.origin)
    return resolved.secret.reveal()


def _built(build: Callable[[str], C], key: MaybeAwaitable[str]) -> MaybeAwaitable[C]:
    if isinstance(key, str):
        return build(key)
    return _build_later(build, key)


async def _build_later(build: Callable[[str], C], key: Awaitable[str]) -> C:
    return build(await key)


def _note_key_origin(keys: UserKeys, provider: ProviderName, origin: KeyOrigin) -> None:
    scope = current_scope_or_none()
    if scope is None:  # a job or script outside any request: there is no response
        return
    scope.provide(_KEYS_USED, keys)  # for app.keys.health, should the provider reject the key
    origins = scope.local(_ORIGINS, _no_origins)
    origins[provider] = origin
    if len(origins) == 1:
        value = _SINGLE[origin]
    else:
        joined = ", ".join(f"{p.value}={o.value}" for p, o in sorted(origins.items()))
        value = joined.encode("latin-1")
    scope.set_response_header(_HEADER_NAME, value)
