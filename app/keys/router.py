"""`/v1/keys`: store, list and delete the caller's keys. Write-only: no key ever comes back."""

from fastapi import APIRouter, Depends, Request, Response, status

from keyscope.app.deps import KeyStoreDep, PrincipalDep
from keyscope.app.errors import (
    InvalidKeyFormat,
    KeyNotFound,
    UnknownProvider,
    UnsupportedMediaType,
)
from keyscope.app.keys.schemas import KeyIn, KeyList, KeyOut
from keyscope.app.problems import ProblemRoute
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import PUBLISHABLE_PREFIX, is_publishable

router = APIRouter(route_class=ProblemRoute, prefix="/v1/keys", tags=["keys"])


def _provider(name: str) -> ProviderName:
    try:
        return ProviderName(name)
    except ValueError:
        known = ", ".join(p.value for p in ProviderName)
        # `name` came from the URL path, which is safe to echo (a key belongs in the body).
        raise UnknownProvider(f"Unknown provider {name[:40]!r}; known: {known}.") from None


def _json_only(request: Request) -> None:
    """`application/json` exactly (parameters such as charset allowed): FastAPI also parses
    any `+json` type, and a key API has no reason to be lenient about what it reads."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("PUT /v1/keys/{provider} takes application/json.")


@router.put("/{provider}", dependencies=[Depends(_json_only)])
async def put_key(
    provider: str, body: KeyIn, principal: PrincipalDep, store: KeyStoreDep
) -> KeyOut:
    """Store or replace the caller's key for `provider`."""
    name = _provider(provider)
    if name is ProviderName.COPILOTKIT and not is_publishable(body.api_key):
        # The frontend config hands this key to browsers: only a publishable one may be stored.
        raise InvalidKeyFormat(
            f"A CopilotKit key must be a Copilot Cloud public key ({PUBLISHABLE_PREFIX}…)."
        )
    stored = await store.put(principal.subject, name, body.api_key)
    return KeyOut.of(stored)


@router.get("")
async def list_keys(principal: PrincipalDep, store: KeyStoreDep) -> KeyList:
    """The caller's keys, masked."""
    records = await store.records_for(principal.subject)
    return KeyList(keys=[KeyOut.of(records[p]) for p in ProviderName if p in records])


@router.delete("/{provider}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(provider: str, principal: PrincipalDep, store: KeyStoreDep) -> Response:
    """Remove the caller's key for `provider`; 404 when there is none."""
    name = _provider(provider)
    if not await store.delete(principal.subject, name):
        raise KeyNotFound(f"No {name.value} key is stored for this user.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
