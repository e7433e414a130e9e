"""Usage per user and provider, counted in memory on the hot path and written in batches.

`record()` is one dict update under a lock: the request never waits for the database. A
background thread flushes every `flush_interval` seconds, and `stop()` flushes once more at
shutdown. Each flush is one transaction: an increment upsert per (user, provider, origin, day)
into `key_usage_daily`, `last_used_at` on the keys that served, and a `platform-used` event the
first time the operator's key served a user on a day. Several workers or instances flush
increments into the same rows, so their counts add up.

What a crash can lose: the counts since the last flush (at most `flush_interval` seconds of
them). A flush that fails (database down) keeps its counts for the next attempt.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keyscope.app.db import database_errors, run_in_db_thread
from keyscope.app.keys.events import KeyAction, append_events, event_row
from keyscope.app.keys.models import key_usage_daily, provider_keys
from keyscope.app.keys.policy import KeyOrigin
from keyscope.providers import ProviderName

log = logging.getLogger("keyscope.usage")

_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1).toordinal()

# (user id, provider, origin, UTC day as days since the epoch)
_Slot = tuple[str, ProviderName, KeyOrigin, int]


@dataclass
class _Tally:
    requests: int
    last_used: float  # time.time() of the latest request


class UsageTracker:
    """In-memory request counts, flushed to the database off the request path."""

    def __init__(self, engine: Engine, *, flush_interval: float, enabled: bool = True) -> None:
        self._engine = engine
        self._flush_interval = flush_interval
        self.enabled = enabled
        self._pending: dict[_Slot, _Tally] = {}
        self._flushed: dict[tuple[ProviderName, KeyOrigin], int] = {}  # totals, for metrics
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time (timer and shutdown)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def record(self, user_id: str, provider: ProviderName, origin: KeyOrigin) -> None:
        """Count one request served with `user_id`'s `origin` key for `provider`."""
        if not self.enabled:
            return
        now = time.time()
        slot = (user_id, provider, origin, int(now // _SECONDS_PER_DAY))
        with self._lock:
            tally = self._pending.get(slot)
            if tally is None:
                self._pending[slot] = _Tally(1, now)
            else:
                tally.requests += 1
                tally.last_used = now

    def totals(self) -> dict[tuple[ProviderName, KeyOrigin], int]:
        """Requests counted by this process so far, flushed or not, by provider and origin."""
        with self._lock:
            totals = dict(self._flushed)
            for (_, provider, origin, _), tally in self._pending.items():
                totals[provider, origin] = totals.get((provider, origin), 0) + tally.requests
        return totals

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="keyscope-usage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and flush what is left (blocking: call it from a worker thread)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write the pending counts; returns how many slots were written (blocking)."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                with database_errors(), self._engine.begin() as conn:
                    self._write(conn, batch)
            except Exception as exc:
                self._put_back(batch)
                log.warning("usage flush failed, kept for the next one: %s", type(exc).__name__)
                return 0
            with self._lock:
                for (_, provider, origin, _), tally in batch.items():
                    key = (provider, origin)
                    self._flushed[key] = self._flushed.get(key, 0) + tally.requests
            return len(batch)

    async def recent(self, user_id: str, days: int = 30) -> list[dict[str, Any]]:
        """The user's flushed daily counts for the last `days` UTC days, newest first."""
        return await run_in_db_thread(self._recent, user_id, days)

    def _recent(self, user_id: str, days: int) -> list[dict[str, Any]]:
        table = key_usage_daily
        since = datetime.now(UTC).date() - timedelta(days=days - 1)
        query = (
            select(table)
            .where(table.c.user_id == user_id, table.c.day >= since)
            .order_by(table.c.day.desc(), table.c.provider, table.c.origin)
        )
        with database_errors(), self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def _run(self) -> None:
        while not self._stopping.wait(self._flush_interval):
            self.flush()

    def _put_back(self, batch: dict[_Slot, _Tally]) -> None:
        with self._lock:
            for slot, tally in batch.items():
                current = self._pending.get(slot)
                if current is None:
                    self._pending[slot] = tally
                else:
                    current.requests += tally.requests
                    current.last_used = max(current.last_used, tally.last_used)

    def _write(self, conn: Connection, batch: dict[_Slot, _Tally]) -> None:
        # Users' own keys, the bulk of every flush, go as two executemany statements (one
        # upsert, one `last_used_at` update), so a flush costs the process little however
        # many users it covers. The operator's key needs each row's new total, to tell the
        # day's first use, so those slots go one statement each.
        own: list[dict[str, Any]] = []
        platform_slots: list[tuple[_Slot, _Tally]] = []
        for slot, tally in sorted(batch.items(), key=lambda item: _sort_key(item[0])):
            if slot[2] is KeyOrigin.USER:
                own.append(_row(slot, tally))
            else:
                platform_slots.append((slot, tally))
        if own:
            conn.execute(self._increment, own)
            conn.execute(_TOUCH_LAST_USED, own)
        events: list[dict[str, Any]] = []
        for slot, tally in platform_slots:
            total = conn.execute(
                self._increment.returning(key_usage_daily.c.requests), _row(slot, tally)
            ).scalar_one()
            if total == tally.requests:  # this flush created the day's row: first use today
                user_id, provider, _, _ = slot
                used_at = datetime.fromtimestamp(tally.last_used, UTC)
                events.append(
                    event_row(user_id, provider, KeyAction.PLATFORM_USED, None,
                              request_id=None, at=used_at)
                )  # fmt: skip
        append_events(conn, events)

    @property
    def _increment(self) -> Any:
        statement = self._insert(key_usage_daily).values(
            user_id=bindparam("u_user"),
            provider=bindparam("u_provider"),
            origin=bindparam("u_origin"),
            day=bindparam("u_day"),
            requests=bindparam("u_requests"),
        )
        return statement.on_conflict_do_update(
            index_elements=["user_id", "provider", "origin", "day"],
            set_={"requests": key_usage_daily.c.requests + statement.excluded.requests},
        )


def _row(slot: _Slot, tally: _Tally) -> dict[str, Any]:
    user_id, provider, origin, day = slot
    return {
        "u_user": user_id,
        "u_provider": provider.value,
        "u_origin": origin.value,
        "u_day": date.fromordinal(_EPOCH + day),
        "u_requests": tally.requests,
        "u_used": datetime.fromtimestamp(tally.last_used, UTC),
    }


def _sort_key(slot: _Slot) -> tuple[str, str, str, int]:
    # One order for every flusher, so two processes' transactions never deadlock on rows.
    user_id, provider, origin, day = slot
    return (user_id, provider.value, origin.value, day)


def _later(column: Any, value: Any) -> Any:
    """`max(column, value)`, NULL-safe, portable (SQLite has no GREATEST)."""
    return case((column.is_(None), value), (column < value, value), else_=column)


_TOUCH_LAST_USED = (
    update(provider_keys)
    .where(
        provider_keys.c.user_id == bindparam("u_user"),
        provider_keys.c.provider == bindparam("u_provider"),
    )
    .values(last_used_at=_later(provider_keys.c.last_used_at, bindparam("u_used")))
)
