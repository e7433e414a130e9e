"""The key store: the only code that reads or writes `provider_keys`.

Every query is one statement on a pooled connection in a worker thread. A replace is a
single `INSERT … ON CONFLICT DO UPDATE` on both engines: a select-then-update loses
concurrent writes, and read-then-write transactions fail under SQLite's lock. Each change
appends its audit event (app/keys/events.py) in the same transaction.

Every write also tells the process's peers, in its own transaction (app/keys/coherence.py),
and evicts the user locally right after its commit, in the same worker thread: a write that
commits after its request gave up waiting still evicts.

Every call into a worker thread has a client-side deadline: the server's statement_timeout
cannot fire for a query that never reached it (a black-holed connection), so the request
gives up waiting, answers 503, and leaves the thread to finish or fail on its own.
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keyscope.app.db import database_errors, run_in_db_thread
from keyscope.app.errors import DatabaseUnavailable
from keyscope.app.keys.cache import RecordCache
from keyscope.app.keys.coherence import Coherence, LocalOnly
from keyscope.app.keys.events import KeyAction, append_events, current_request_id, event_row
from keyscope.app.keys.models import provider_keys
from keyscope.app.keys.records import KeyStatus, StoredKey, UserRecords
from keyscope.app.security.envelope import EnvelopeCipher, SealBroken, Sealed
from keyscope.providers import ProviderName

log = logging.getLogger("keyscope.keys")

T = TypeVar("T")


@dataclass
class RewrapBatch:
    """What one rotation batch did; `rows == 0` means rotation has finished."""

    last_id: int
    rows: int = 0
    rewrapped: int = 0
    changed_meanwhile: int = 0  # replaced by a PUT while the batch ran: already under primary
    unreadable: int = 0


LAST4_MIN_LENGTH = 12  # shorter keys show no tail: four characters of eight is half a key


class KeyStore:
    """Stores, lists and deletes users' keys; serves their encrypted records from a cache."""

    def __init__(
        self,
        engine: Engine,
        cipher: EnvelopeCipher,
        cache: RecordCache[UserRecords],
        coherence: Coherence | None = None,
        *,
        deadline_seconds: float = 6.0,
    ) -> None:
        self._engine = engine
        self._cipher = cipher
        self._cache = cache
        self._coherence: Coherence = coherence or LocalOnly()
        self._deadline = deadline_seconds
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @property
    def cipher(self) -> EnvelopeCipher:
        return self._cipher

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def coherence(self) -> Coherence:
        return self._coherence

    def cached_records(self, user_id: str) -> UserRecords | None:
        """The user's encrypted records if the cache holds them and may answer, else None."""
        if not self._coherence.cache_trusted():
            return None
        return self._cache.get(user_id)

    async def records_for(self, user_id: str) -> UserRecords:
        """The user's encrypted records: from the cache, else one query."""
        cached = self.cached_records(user_id)
        if cached is not None:
            return cached
        return await self._in_thread(self._after_miss, user_id)

    async def load_records(self, user_id: str) -> UserRecords:
        """Read through: peers' writes applied, one query, and the cache filled unless a
        write intervened (the list route: fresh `last_used_at` for the caller)."""
        return await self._in_thread(self._load_and_fill, user_id)

    async def fresh_records(self, user_id: str) -> UserRecords:
        """The user's records read from the database (the list route: shows `last_used_at`,
        which the usage flusher writes without invalidating caches)."""
        return await self._in_thread(self._load, user_id)

    def fingerprint(self, user_id: str, provider: ProviderName, api_key: str) -> str:
        return self._cipher.fingerprint(api_key, owner=user_id, provider=provider.value)

    async def put(
        self,
        user_id: str,
        provider: ProviderName,
        api_key: str,
        *,
        status: KeyStatus = KeyStatus.ACTIVE,
        expires_at: datetime | None = None,
    ) -> StoredKey:
        """Store or replace the user's key for `provider` (one atomic upsert + its event)."""
        sealed = self._cipher.seal(api_key, owner=user_id, provider=provider.value)
        fingerprint = self.fingerprint(user_id, provider, api_key)
        last4 = api_key[-4:] if len(api_key) >= LAST4_MIN_LENGTH else ""
        stored = await self._in_thread(
            self._upsert,
            _Write(user_id, provider, sealed, last4, fingerprint, status, expires_at),
            current_request_id(),
        )
        log.info(
            "key stored user=%s provider=%s fingerprint=%s", user_id, provider.value, fingerprint
        )
        return stored

    async def delete(self, user_id: str, provider: ProviderName) -> bool:
        deleted = await self._in_thread(self._delete, user_id, provider, current_request_id())
        if deleted:
            log.info("key deleted user=%s provider=%s", user_id, provider.value)
        return deleted

    async def mark(
        self,
        user_id: str,
        provider: ProviderName,
        fingerprint: str,
        status: KeyStatus,
        action: KeyAction,
        *,
        only_if_changed: bool = True,
    ) -> bool:
        """Set the status of the user's key *if it is still the key with `fingerprint`* (a
        replace that raced the check is never marked), and append `action`'s event.

        With `only_if_changed` (use-time reports, which concurrent requests may repeat) a key
        already in `status` is left alone and no event is written; a re-verification always
        writes its event."""
        changed = await self._in_thread(
            self._mark,
            _Mark(user_id, provider, fingerprint, status, action, only_if_changed),
            current_request_id(),
        )
        if changed:
            log.info(
                "key %s user=%s provider=%s fingerprint=%s",
                action.value,
                user_id,
                provider.value,
                fingerprint,
            )
        return changed

    async def record_rejection(self, user_id: str, provider: ProviderName, api_key: str) -> None:
        """A `rejected-by-provider` event for a key that was refused before it was stored."""
        row = event_row(
            user_id,
            provider,
            KeyAction.REJECTED,
            self.fingerprint(user_id, provider, api_key),
            request_id=current_request_id(),
        )
        await self._in_thread(self._append_event, row)

    def _append_event(self, row: dict[str, Any]) -> None:
        with database_errors(), self._engine.begin() as conn:
            append_events(conn, [row])

    async def ping(self, timeout_seconds: float | None = None) -> None:
        await self._in_thread(self._ping, deadline=timeout_seconds)

    async def _in_thread(
        self, func: Callable[..., T], *args: Any, deadline: float | None = None
    ) -> T:
        """`func(*args)` in a worker thread, given up after the deadline (503)."""
        with anyio.move_on_after(deadline or self._deadline) as scope:
            return await run_in_db_thread(func, *args)
        if scope.cancelled_caught:
            log.warning("database call given up after its deadline: %s", func.__name__)
        raise DatabaseUnavailable

    def key_ids_in_use(self) -> dict[str, int]:
        """Rows per master key id (start-up check and `keyscope rotate`)."""
        query = select(provider_keys.c.key_id, func.count()).group_by(provider_keys.c.key_id)
        with database_errors(), self._engine.connect() as conn:
            return {str(kid): int(count) for kid, count in conn.execute(query)}

    def rewrap_batch(self, after_id: int, batch_size: int) -> RewrapBatch:
        """Re-wrap the next rows (by id, after `after_id`) not yet under the primary key.

        Each row is updated only if it is still the version that was read, so a concurrent
        PUT is never overwritten; the batch commits as one transaction, so a crash loses at
        most the batch in flight and a rerun picks up where it stopped (rows already under the
        primary key are not selected again). Rows whose master key is missing are left alone
        and counted by `key_ids_in_use`; rows that fail authentication are counted here.
        """
        keyring = self._cipher.keyring
        columns = provider_keys.c
        query = (
            select(provider_keys)
            .where(
                columns.id > after_id,
                columns.key_id != keyring.primary_id,
                columns.key_id.in_(list(keyring.keys)),
            )
            .order_by(columns.id)
            .limit(batch_size)
        )
        batch = RewrapBatch(last_id=after_id)
        rewrapped_users: set[str] = set()
        with database_errors(), self._engine.begin() as conn:
            for row in conn.execute(query).mappings().all():
                batch.last_id = row["id"]
                sealed = _sealed(row)
                try:
                    fresh = self._cipher.rewrap(
                        sealed, owner=row["user_id"], provider=row["provider"]
                    )
                except SealBroken:
                    batch.unreadable += 1
                    continue
                result = conn.execute(
                    update(provider_keys)
                    .where(columns.id == row["id"], columns.wrapped_key == sealed.wrapped_key)
                    .values(wrapped_key=fresh.wrapped_key, key_id=fresh.key_id)
                )
                if result.rowcount:
                    batch.rewrapped += 1
                    rewrapped_users.add(row["user_id"])
                else:
                    batch.changed_meanwhile += 1
            # Peers holding the old wrapping would fail once the old master key is removed.
            self._coherence.record_write(conn, sorted(rewrapped_users))
            batch.rows = batch.rewrapped + batch.changed_meanwhile + batch.unreadable
        self._coherence.settle(committed=False)  # no one waits on a rotation batch
        if batch.rewrapped:
            self._cache.clear()
        return batch

    def _after_miss(self, user_id: str) -> UserRecords:
        self._coherence.catch_up()  # peers' writes first, so their users are evicted
        # Most misses on a warm cache are a commit by anyone (a usage flush, another user's
        # write) that made the cache untrusted until the catch-up: the user's entry, if the
        # catch-up left it, is as good as a query.
        cached = self.cached_records(user_id)
        if cached is not None:
            return cached
        return self._query_and_fill(user_id)

    def _load_and_fill(self, user_id: str) -> UserRecords:
        self._coherence.catch_up()  # peers' writes first, so their users are evicted
        return self._query_and_fill(user_id)

    def _query_and_fill(self, user_id: str) -> UserRecords:
        generation = self._cache.generation(user_id)
        records = self._load(user_id)
        self._cache.fill(user_id, records, generation)
        return records

    def _load(self, user_id: str) -> UserRecords:
        with database_errors(), self._engine.connect() as conn:
            return _records(conn.execute(_LOAD_USER, {"user_id": user_id}).mappings().all())

    def _upsert(self, write: "_Write", request_id: str | None) -> StoredKey:
        now = datetime.now(UTC)
        sealed = write.sealed
        values = {
            "ciphertext": sealed.ciphertext,
            "wrapped_key": sealed.wrapped_key,
            "key_id": sealed.key_id,
            "format_version": sealed.format_version,
            "last4": write.last4,
            "fingerprint": write.fingerprint,
            "status": write.status.value,
            "expires_at": write.expires_at,
            "last_used_at": None,  # a new key has not been used, whatever the old one was
            "updated_at": now,
        }
        statement = (
            self._insert(provider_keys)
            .values(user_id=write.user_id, provider=write.provider.value, created_at=now, **values)
            .on_conflict_do_update(index_elements=["user_id", "provider"], set_=values)
            .returning(*provider_keys.c)
        )
        with self._write(write.user_id) as conn:
            stored = _stored(conn.execute(statement).mappings().one())
            # An insert sets created_at to this write's `now`; an update keeps the old one.
            action = KeyAction.STORED if stored.created_at == now else KeyAction.REPLACED
            events = [_event(write, action, request_id, now)]
            if write.status is KeyStatus.ACTIVE:
                events.append(_event(write, KeyAction.VERIFIED, request_id, now))
            append_events(conn, events)
        return stored

    @contextmanager
    def _write(self, user_id: str) -> Iterator[Connection]:
        """One transaction that changes `user_id`'s keys: peers are told inside it, and the
        user is evicted here after it ends (see RecordCache on the fill race), committed or
        not."""
        committed = False
        try:
            with database_errors(), self._engine.begin() as conn:
                yield conn
                self._coherence.record_write(conn, (user_id,))
            committed = True
        finally:
            self._cache.invalidate(user_id)
            self._coherence.settle(committed)

    def _delete(self, user_id: str, provider: ProviderName, request_id: str | None) -> bool:
        statement = (
            delete(provider_keys)
            .where(provider_keys.c.user_id == user_id, provider_keys.c.provider == provider.value)
            .returning(provider_keys.c.fingerprint)
        )
        with self._write(user_id) as conn:
            fingerprints = list(conn.execute(statement).scalars())
            append_events(conn, [
                event_row(user_id, provider, KeyAction.DELETED, fp, request_id=request_id)
                for fp in fingerprints
            ])  # fmt: skip
        return bool(fingerprints)

    def _mark(self, mark: "_Mark", request_id: str | None) -> bool:
        columns = provider_keys.c
        conditions = [
            columns.user_id == mark.user_id,
            columns.provider == mark.provider.value,
            columns.fingerprint == mark.fingerprint,
        ]
        if mark.only_if_changed:
            conditions.append(columns.status != mark.status.value)
        statement = update(provider_keys).where(*conditions).values(status=mark.status.value)
        event = event_row(
            mark.user_id, mark.provider, mark.action, mark.fingerprint, request_id=request_id
        )
        with self._write(mark.user_id) as conn:
            changed = bool(conn.execute(statement).rowcount)
            if changed:
                append_events(conn, [event])
        return changed

    def _ping(self) -> None:
        with database_errors(), self._engine.connect() as conn:
            conn.execute(select(1))


def _sealed(row: Any) -> Sealed:
    return Sealed(
        ciphertext=bytes(row["ciphertext"]),
        wrapped_key=bytes(row["wrapped_key"]),
        key_id=row["key_id"],
        format_version=row["format_version"],
    )


def _stored(row: Any) -> StoredKey:
    return StoredKey(
        user_id=row["user_id"],
        provider=ProviderName(row["provider"]),
        sealed=_sealed(row),
        last4=row["last4"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        expires_at=_utc_or_none(row["expires_at"]),
        last_used_at=_utc_or_none(row["last_used_at"]),
    )


# Built once: the cache-miss path runs it on every request, and SQLAlchemy memoizes the cache
# key of a statement object it sees again, so only the parameter changes per call.
_LOAD_USER = select(provider_keys).where(provider_keys.c.user_id == bindparam("user_id"))


def _records(rows: Iterable[Any]) -> UserRecords:
    known = {p.value for p in ProviderName}
    return {ProviderName(r["provider"]): _stored(r) for r in rows if r["provider"] in known}


@dataclass(frozen=True)
class _Write:
    user_id: str
    provider: ProviderName
    sealed: Sealed
    last4: str
    fingerprint: str
    status: KeyStatus
    expires_at: datetime | None


@dataclass(frozen=True)
class _Mark:
    user_id: str
    provider: ProviderName
    fingerprint: str
    status: KeyStatus
    action: KeyAction
    only_if_changed: bool


def _event(
    write: _Write, action: KeyAction, request_id: str | None, at: datetime
) -> dict[str, Any]:
    return event_row(
        write.user_id, write.provider, action, write.fingerprint, request_id=request_id, at=at
    )


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
