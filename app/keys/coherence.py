"""Keeping the per-process record cache right when other processes write to the same database.

Each process (a `--workers N` worker, or another instance) caches users' encrypted records.
A write acknowledged by one process must stop every peer from serving the old record at once,
so every key write also tells the peers, in its own transaction, and the read path of each
process only trusts its cache while it can be sure it has heard every write:

* PostgreSQL: `pg_notify` in the write's transaction; one LISTEN connection per process
  evicts the users named (app/keys/listener.py). While that connection is down the cache is
  suspended (every read goes to the database) and flushed again once LISTEN is back.
* SQLite file: no NOTIFY exists. The write bumps the user's row in `key_revisions`; the read
  path asks a dedicated connection for `PRAGMA data_version` (it changes whenever another
  connection, in any process, commits to the file) and trusts the cache only while it is the
  value seen when the revisions were last read. A changed value sends the request down the
  cache-miss path, which first reads the revisions above the last one applied and evicts
  those users.
* Single process (in-memory SQLite, or `KEYSCOPE_CACHE_COHERENCE=single-process` set by an
  operator who knows no other process writes): local invalidation only.
"""

import logging
import sqlite3
import threading
from collections.abc import Collection
from typing import Any, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from keyscope.app.errors import DatabaseUnavailable, SchemaNotMigrated
from keyscope.app.keys.cache import RecordCache

log = logging.getLogger("keyscope.keys")


class Coherence(Protocol):
    """How one process learns about key writes made by its peers."""

    def start(self, wait_seconds: float) -> None:
        """Begin listening; wait up to `wait_seconds` for the first connection (never raises)."""

    def stop(self) -> None: ...

    def cache_trusted(self) -> bool:
        """Read path, on the event loop: may the cache answer now? Must be cheap."""

    def catch_up(self) -> None:
        """Cache-miss path, in a worker thread, before the query: apply peers' writes."""

    def record_write(self, conn: Connection, user_ids: Collection[str]) -> None:
        """Inside a key write's transaction: make the write known to every peer on commit."""

    def settle(self, committed: bool) -> None:
        """After that transaction, in the same thread, before the write is acknowledged."""

    @property
    def state(self) -> str:
        """What /readyz reports."""


class LocalOnly:
    """No peers: the local invalidation after each write is all there is."""

    state = "single-process"

    # The arguments are the protocol's; a process without peers has nothing to do with them.
    def start(self, wait_seconds: float) -> None:  # noqa: ARG002
        return

    def stop(self) -> None:
        return

    def cache_trusted(self) -> bool:
        return True

    def catch_up(self) -> None:
        return

    def record_write(self, conn: Connection, user_ids: Collection[str]) -> None:  # noqa: ARG002
        return

    def settle(self, committed: bool) -> None:  # noqa: ARG002
        return


# One statement, so the bump needs no read-then-write transaction (which SQLite's lock fails).
# Writes to one SQLite file are serialised, so MAX + 1 is unique and increasing.
_BUMP = text(
    "INSERT INTO key_revisions (user_id, revision) "
    "VALUES (:user_id, (SELECT COALESCE(MAX(revision), 0) + 1 FROM key_revisions)) "
    "ON CONFLICT (user_id) DO UPDATE SET revision = excluded.revision"
)


TRUST_WAIT_SECONDS = 0.005


class SqliteRevisions:
    """Peers on one SQLite file: `PRAGMA data_version` on the read path, revisions on a miss."""

    state = "sqlite-revisions"

    def __init__(self, database_url: str, cache: RecordCache[Any], *, timeout: float) -> None:
        self._path = make_url(database_url).database or ""
        self._cache = cache
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._applied_version: int | None = None  # data_version when revisions were last read
        self._applied_revision = 0

    def start(self, wait_seconds: float) -> None:  # noqa: ARG002  # nothing to wait for
        return  # connects on first use: the file may not exist (or be migrated) yet

    def stop(self) -> None:
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._applied_version = None

    def cache_trusted(self) -> bool:
        # The lock is held for one pragma (a catch-up that finds nothing new) or one small
        # read of the revisions: waiting that long is cheaper than the miss path. Not waiting
        # at all turned a burst of catch-ups (after any commit, under load) into a convoy:
        # each request that found the lock taken went to a worker thread, whose catch-up
        # took the lock in turn. The bound keeps a catch-up stuck on a busy file from
        # holding up the event loop.
        if not self._lock.acquire(timeout=TRUST_WAIT_SECONDS):
            return False
        try:
            if self._conn is None or self._applied_version is None:
                return False
            return bool(self._data_version(self._conn) == self._applied_version)
        except sqlite3.Error:
            return False
        finally:
            self._lock.release()

    def catch_up(self) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._catch_up_locked()
                    return
                except sqlite3.Error as exc:
                    if str(exc).startswith(("no such table", "no such column")):
                        raise SchemaNotMigrated from None
                    # A fresh connection heals a broken one (a file replaced or restored);
                    # starting over from empty is always correct.
                    log.warning("SQLite coherence connection reset: %s", type(exc).__name__)
                    self._reset_locked()
                    if attempt == 2:
                        raise DatabaseUnavailable from None

    def record_write(self, conn: Connection, user_ids: Collection[str]) -> None:
        for user_id in user_ids:
            conn.execute(_BUMP, {"user_id": user_id})

    def settle(self, committed: bool) -> None:  # noqa: ARG002  # peers check on read
        return

    def _catch_up_locked(self) -> None:
        conn = self._connection()
        # Read the version first: a commit after this read changes it again, so the next
        # request catches up once more instead of trusting a cache that missed the commit.
        version = self._data_version(conn)
        if version == self._applied_version:
            return
        if self._applied_version is None:
            # First catch-up (or after an error): start from the current revision, empty.
            row = conn.execute("SELECT COALESCE(MAX(revision), 0) FROM key_revisions").fetchone()
            self._cache.clear()
            self._applied_revision = int(row[0])
        else:
            changed = conn.execute(
                "SELECT user_id, revision FROM key_revisions WHERE revision > ?",
                (self._applied_revision,),
            ).fetchall()
            for user_id, revision in changed:
                self._cache.invalidate(user_id)
                self._applied_revision = max(self._applied_revision, int(revision))
        self._applied_version = version

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # Autocommit: every statement reads the file's latest committed state.
            self._conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        return self._conn

    @staticmethod
    def _data_version(conn: sqlite3.Connection) -> int:
        row = conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])


def is_private_sqlite(database_url: str) -> bool:
    """An in-memory SQLite database: no other process can open it."""
    url = make_url(database_url)
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"
