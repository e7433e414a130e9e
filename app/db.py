"""Engine construction and the database-fault translation shared by every query.

Queries run on a synchronous SQLAlchemy engine in worker threads (`run_in_db_thread`), so
nothing blocks the event loop and SQLite and PostgreSQL share one code path.
"""

import asyncio
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry

from keyscope.app.errors import ConfigurationError, DatabaseUnavailable, SchemaNotMigrated

# SQLSTATEs PostgreSQL raises for a missing table / column: the schema is not migrated.
_UNDEFINED_OBJECT_STATES = frozenset({"42P01", "42703"})
_SQLITE_MISSING = ("no such table", "no such column")

# Stable constraint names, so migrations written on SQLite replay on PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

T = TypeVar("T")

# Database work runs in threads of keyscope's own, not the default pool that `def` endpoints
# hold while they wait: a `def` endpoint resolving keys through @inject waits (in its thread)
# for a query, which must not need a thread that such endpoints have all taken.
DATABASE_THREADS = 16
_limiters: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]" = (
    weakref.WeakKeyDictionary()
)


async def run_in_db_thread(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in one of keyscope's database threads (one limiter per event loop)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(DATABASE_THREADS)
    # Abandoned when its caller gives up (a request's deadline): the thread finishes or fails
    # on its own, and the limiter's token is handed back at once.
    return await anyio.to_thread.run_sync(func, *args, limiter=limiter, abandon_on_cancel=True)


def make_engine(url: str, *, statement_timeout_ms: int = 5_000) -> Engine:
    """An engine tuned per backend: busy timeout and WAL for SQLite; pre-ping, connect and
    statement timeouts for PostgreSQL (a hung connection must fail, not block for ever).

    `statement_timeout` is enforced by the server, so it cannot end a query that never reached
    it; libpq's TCP bounds end a connection whose packets are dropped (unacknowledged data
    after `tcp_user_timeout`, an idle peer after the keepalive probes), and a checkout waits
    for a pooled connection at most as long as a statement may run. The key store adds a
    deadline of its own around every call (app/keys/store.py)."""
    require_driver(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": statement_timeout_ms / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=statement_timeout_ms / 1000,
        connect_args={
            "connect_timeout": max(1, statement_timeout_ms // 1000),
            "options": f"-c statement_timeout={statement_timeout_ms}",
            "tcp_user_timeout": statement_timeout_ms,
            "keepalives": 1,
            "keepalives_idle": max(1, statement_timeout_ms // 1000),
            "keepalives_interval": 1,
            "keepalives_count": 3,
        },
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a lost or unreachable database, or an exhausted pool, into a 503 problem (not a
    500 with a traceback)."""
    try:
        yield
    except PoolTimeout:
        raise DatabaseUnavailable from None
    except (OperationalError, DBAPIError) as exc:
        if _is_missing_schema(exc):
            raise SchemaNotMigrated from None
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise DatabaseUnavailable from None
        raise


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite file URL, so the default `./var/` works on a fresh clone."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _is_missing_schema(exc: DBAPIError) -> bool:
    """A query failed because keyscope's tables or columns do not exist (only ever called on
    the error path, so the hot path pays nothing for it)."""
    if getattr(exc.orig, "sqlstate", None) in _UNDEFINED_OBJECT_STATES:
        return True
    return isinstance(exc, OperationalError) and str(exc.orig).startswith(_SQLITE_MISSING)


def require_driver(url: str) -> None:
    """Fail with one line when the URL is malformed or its database driver is not installed
    (the message never repeats the URL: it may hold a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigurationError(
            "KEYSCOPE_DATABASE_URL is not a database URL SQLAlchemy understands"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError:
        if dialect.name == "postgresql":
            raise ConfigurationError(
                "KEYSCOPE_DATABASE_URL is a PostgreSQL URL but its driver is not installed: "
                "pip install 'keyscope[postgres]' (psycopg)"
            ) from None
        raise ConfigurationError(
            f"the database driver for KEYSCOPE_DATABASE_URL ({dialect.name}) is not installed"
        ) from None
