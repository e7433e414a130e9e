"""The audit trail: append-only `key_events` rows, and the caller's page of them.

A row names the user, provider, action, the key's fingerprint (a keyed hash: it identifies a
key without revealing it), the time and the request id; never the key. Rows are only ever
inserted: nothing in keyscope updates or deletes them.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from keyscope.app.db import database_errors, run_in_db_thread
from keyscope.app.keys.models import key_events
from keyscope.app.scope import current_scope_or_none
from keyscope.providers import ProviderName

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_REQUEST_ID_SLOT = object()  # the request's id, kept in its RequestScope


class KeyAction(StrEnum):
    STORED = "stored"
    REPLACED = "replaced"
    DELETED = "deleted"
    VERIFIED = "verified"
    REJECTED = "rejected-by-provider"
    UNREADABLE = "unreadable"
    PLATFORM_USED = "platform-used"  # first use of the operator's key per user, provider, day


@dataclass(frozen=True)
class KeyEvent:
    id: int
    provider: str
    action: str
    fingerprint: str | None
    at: datetime
    request_id: str | None


def current_request_id() -> str | None:
    """The caller's `X-Request-ID` when it is a plain token, else one minted per request."""
    scope = current_scope_or_none()
    if scope is None:
        return None
    given = scope.header(REQUEST_ID_HEADER)
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    minted: str = scope.local(_REQUEST_ID_SLOT, lambda: uuid.uuid4().hex)
    return minted


def event_row(
    user_id: str,
    provider: ProviderName | str,
    action: KeyAction,
    fingerprint: str | None,
    *,
    request_id: str | None,
    at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "provider": str(provider),
        "action": action.value,
        "fingerprint": fingerprint,
        "request_id": request_id,
        "at": at or datetime.now(UTC),
    }


def append_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` in the caller's transaction, so an event commits with its change."""
    if rows:
        conn.execute(insert(key_events), rows)


class EventLog:
    """Reads the trail for the keys API, and appends events that have no other write."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def append(self, rows: list[dict[str, Any]]) -> None:
        await run_in_db_thread(self._append, rows)

    async def page(self, user_id: str, *, limit: int, before: int | None) -> list[KeyEvent]:
        """The user's events newest first; `before` is the last id of the previous page."""
        return await run_in_db_thread(self._page, user_id, limit, before)

    def _append(self, rows: list[dict[str, Any]]) -> None:
        with database_errors(), self._engine.begin() as conn:
            append_events(conn, rows)

    def _page(self, user_id: str, limit: int, before: int | None) -> list[KeyEvent]:
        columns = key_events.c
        query = select(key_events).where(columns.user_id == user_id)
        if before is not None:
            query = query.where(columns.id < before)
        query = query.order_by(columns.id.desc()).limit(limit)
        with database_errors(), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            KeyEvent(
                id=row["id"],
                provider=row["provider"],
                action=row["action"],
                fingerprint=row["fingerprint"],
                at=row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC),
                request_id=row["request_id"],
            )
            for row in rows
        ]
