"""Provider clients built for one request, and the note of whose key each one holds.

Every client is built here from the request's `UserKeys`, and the same step notes on the
response whose key served it: `X-Keyscope-Key-Origin: user|platform`. Every route that injects
a provider client gets the header, the app's own routes and yours alike, with no dependency
of its own. A request that used several providers gets `exa=user, gemini=platform`.
"""

from keyscope.app.scope import current_scope_or_none
from keyscope.app.user_keys import KeyOrigin, UserKeys
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

KEY_ORIGIN_HEADER = "X-Keyscope-Key-Origin"
_HEADER_NAME = KEY_ORIGIN_HEADER.lower().encode("latin-1")
_SINGLE = {origin: origin.value.encode("latin-1") for origin in KeyOrigin}  # prebuilt values
_ORIGINS = object()  # the request's {provider: origin}, kept in its RequestScope


def gemini_for(keys: UserKeys, http: SharedHttp, base_url: str) -> GeminiClient:
    return GeminiClient(_key_for(keys, ProviderName.GEMINI), base_url=base_url, http=http)


def exa_for(keys: UserKeys, http: SharedHttp, base_url: str) -> ExaClient:
    return ExaClient(_key_for(keys, ProviderName.EXA), base_url=base_url, http=http)


def copilotkit_for(keys: UserKeys, http: SharedHttp, runtime_url: str) -> CopilotKitClient:
    secret = _key_for(keys, ProviderName.COPILOTKIT)
    return CopilotKitClient(secret, runtime_url=runtime_url, http=http)


def key_origin(provider: ProviderName) -> KeyOrigin | None:
    """The origin of the key this request's `provider` client was built with, if one was."""
    scope = current_scope_or_none()
    if scope is None:
        return None
    origins = scope.local(_ORIGINS, _no_origins)
    return origins.get(provider)


def _no_origins() -> dict[ProviderName, KeyOrigin]:
    return {}


def _key_for(keys: UserKeys, provider: ProviderName) -> str:
    """The plaintext key a client is built with; notes on the response whose key it is."""
    resolved = keys.require(provider)
    _note_key_origin(provider, resolved.origin)
    return resolved.secret.reveal()


def _note_key_origin(provider: ProviderName, origin: KeyOrigin) -> None:
    scope = current_scope_or_none()
    if scope is None:  # a job or script outside any request: there is no response
        return
    origins = scope.local(_ORIGINS, _no_origins)
    origins[provider] = origin
    if len(origins) == 1:
        value = _SINGLE[origin]
    else:
        joined = ", ".join(f"{p.value}={o.value}" for p, o in sorted(origins.items()))
        value = joined.encode("latin-1")
    scope.set_response_header(_HEADER_NAME, value)
