"""`/v1/keys`: store, list and delete the caller's keys. Write-only: no key ever comes back."""

from fastapi import APIRouter, Response, status

from keyscope.app.deps import KeyStoreDep, PrincipalDep
from keyscope.app.errors import KeyNotFound, UnknownProvider
from keyscope.app.keys.schemas import KeyIn, KeyList, KeyOut
from keyscope.app.problems import ProblemRoute
from keyscope.providers import ProviderName

router = APIRouter(route_class=ProblemRoute, prefix="/v1/keys", tags=["keys"])


def _provider(name: str) -> ProviderName:
    try:
        return ProviderName(name)
    except ValueError:
        known = ", ".join(p.value for p in ProviderName)
        # `name` came from the URL path, which is safe to echo (a key belongs in the body).
        raise UnknownProvider(f"Unknown provider {name[:40]!r}; known: {known}.") from None


@router.put("/{provider}")
async def put_key(
    provider: str, body: KeyIn, principal: PrincipalDep, store: KeyStoreDep
) -> KeyOut:
    """Store or replace the caller's key for `provider`."""
    stored = await store.put(principal.subject, _provider(provider), body.api_key)
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
