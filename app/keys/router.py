"""`/v1/keys`: store, list, verify and delete the caller's keys, and read their audit trail.

Write-only: no key ever comes back.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from keyscope.app.deps import (
    EventLogDep,
    KeyStoreDep,
    KeyValidatorDep,
    PrincipalDep,
    SettingsDep,
    UsageDep,
)
from keyscope.app.errors import (
    ExpiryInPast,
    InvalidKeyFormat,
    KeyNotFound,
    KeyUnreadable,
    UnknownProvider,
    UnsupportedMediaType,
)
from keyscope.app.keys.events import KeyAction
from keyscope.app.keys.records import KeyStatus
from keyscope.app.keys.schemas import (
    DailyUsage,
    EventOut,
    EventPage,
    KeyIn,
    KeyList,
    KeyOut,
)
from keyscope.app.keys.validation import Validation
from keyscope.app.problems import ProblemRoute
from keyscope.app.security.envelope import SealBroken, UnknownMasterKey
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import PUBLISHABLE_PREFIX, is_publishable
from keyscope.providers.errors import KeyRejected

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


@router.get("/events")
async def list_events(
    principal: PrincipalDep,
    events: EventLogDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> EventPage:
    """The caller's key events, newest first; `before` pages to older ones."""
    page = await events.page(principal.subject, limit=limit, before=before)
    return EventPage(
        events=[EventOut.of(e) for e in page],
        next_before=page[-1].id if len(page) == limit else None,
    )


@router.put("/{provider}", dependencies=[Depends(_json_only)])
async def put_key(
    provider: str,
    body: KeyIn,
    principal: PrincipalDep,
    store: KeyStoreDep,
    validator: KeyValidatorDep,
    settings: SettingsDep,
    validate: bool = True,
) -> KeyOut:
    """Check the key with its provider, then store or replace it.

    Rejected by the provider → 422, nothing stored. No answer (down, timed out) → stored as
    `unverified`. `?validate=false` (or KEYSCOPE_KEY_VALIDATION=false) stores it unchecked,
    as `unverified`.
    """
    name = _provider(provider)
    if name is ProviderName.COPILOTKIT and not is_publishable(body.api_key):
        # The frontend config hands this key to browsers: only a publishable one may be
        # stored, checked before any call (nothing to ask Copilot Cloud about a secret key).
        raise InvalidKeyFormat(
            name,
            f"A CopilotKit key must be a Copilot Cloud public key ({PUBLISHABLE_PREFIX}…); "
            "nothing was stored.",
        )
    now = datetime.now(UTC)
    if body.expires_at is not None and body.expires_at <= now:
        raise ExpiryInPast("expires_at must be in the future.")
    check = Validation(KeyStatus.UNVERIFIED, "not checked (validation switched off)")
    if validate and settings.key_validation:
        try:
            check = await validator.validate(name, body.api_key)
        except KeyRejected as exc:
            await store.record_rejection(principal.subject, name, body.api_key)
            raise KeyRejected(
                name, f"{name.value} rejected the key, nothing was stored ({exc.detail})"
            ) from None
    stored = await store.put(
        principal.subject, name, body.api_key, status=check.status, expires_at=body.expires_at
    )
    return KeyOut.of(stored, now, reason=check.reason)


@router.post("/{provider}/verify")
async def verify_key(
    provider: str, principal: PrincipalDep, store: KeyStoreDep, validator: KeyValidatorDep
) -> KeyOut:
    """Re-check the stored key with its provider; the answer shows its new status."""
    name = _provider(provider)
    record = (await store.fresh_records(principal.subject)).get(name)
    if record is None:
        raise KeyNotFound(f"No {name.value} key is stored for this user.")
    user = principal.subject
    try:
        secret = store.cipher.open(record.sealed, owner=user, provider=name.value)
    except (SealBroken, UnknownMasterKey):
        await store.mark(user, name, record.fingerprint, KeyStatus.UNREADABLE, KeyAction.UNREADABLE)
        raise KeyUnreadable(
            f"The stored {name.value} key cannot be decrypted; store the key again."
        ) from None
    reason = None
    try:
        check = await validator.validate(name, secret)
    except KeyRejected:
        new_status, action = KeyStatus.INVALID, KeyAction.REJECTED
    else:
        new_status, reason = check.status, check.reason
        action = KeyAction.VERIFIED
    await store.mark(user, name, record.fingerprint, new_status, action, only_if_changed=False)
    refreshed = (await store.fresh_records(user)).get(name, record)
    return KeyOut.of(refreshed, datetime.now(UTC), reason=reason)


@router.get("")
async def list_keys(principal: PrincipalDep, store: KeyStoreDep, usage: UsageDep) -> KeyList:
    """The caller's keys, masked, with their health, expiry, last use and daily usage."""
    # Read through (fresh `last_used_at`), refilling the cache for the requests that follow.
    records = await store.load_records(principal.subject)
    keyring = store.cipher.keyring
    now = datetime.now(UTC)
    by_provider: dict[str, list[DailyUsage]] = {}
    for row in await usage.recent(principal.subject):
        by_provider.setdefault(row["provider"], []).append(
            DailyUsage(day=row["day"], origin=row["origin"], requests=row["requests"])
        )
    return KeyList(
        keys=[
            KeyOut.of(
                records[p],
                now,
                readable=records[p].sealed.key_id in keyring,
                usage=by_provider.get(p.value),
            )
            for p in ProviderName
            if p in records
        ]
    )


@router.delete("/{provider}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(provider: str, principal: PrincipalDep, store: KeyStoreDep) -> Response:
    """Remove the caller's key for `provider`; 404 when there is none."""
    name = _provider(provider)
    if not await store.delete(principal.subject, name):
        raise KeyNotFound(f"No {name.value} key is stored for this user.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
