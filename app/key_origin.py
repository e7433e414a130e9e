"""Say, on the response, whose key served it: `X-Keyscope-Key-Origin: user|platform`.

The client factories note the origin when they build a client, so every route that injects a
provider client gets the header, the app's own routes and yours alike, with no dependency of
its own. A request that used several providers gets `exa=user, gemini=platform`.
"""

from keyscope.app.scope import current_scope_or_none
from keyscope.app.user_keys import KeyOrigin
from keyscope.providers import ProviderName

KEY_ORIGIN_HEADER = "X-Keyscope-Key-Origin"
_ORIGINS = object()  # the request's {provider: origin}, kept in its RequestScope


def note_key_origin(provider: ProviderName, origin: KeyOrigin) -> None:
    scope = current_scope_or_none()
    if scope is None:  # a job or script outside any request: there is no response
        return
    origins: dict[ProviderName, KeyOrigin] = scope.get_or_create(_ORIGINS, dict)
    origins[provider] = origin
    if len(origins) == 1:
        value = origin.value
    else:
        value = ", ".join(f"{p.value}={o.value}" for p, o in sorted(origins.items()))
    scope.set_response_header(KEY_ORIGIN_HEADER, value)
