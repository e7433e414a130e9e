"""Engine construction and the database-fault translation shared by every query.

Queries run on a synchronous SQLAlchemy engine in worker threads (`anyio.to_thread`), so
nothing blocks the event loop and SQLite and PostgreSQL share one code path.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry

from keyscope.app.errors import DatabaseUnavailable

# Stable constraint names, so migrations written on SQLite replay on PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, *, statement_timeout_ms: int = 5_000) -> Engine:
    """An engine tuned per backend: busy timeout and WAL for SQLite; pre-ping, connect and
    statement timeouts for PostgreSQL (a hung connection must fail, not block for ever).

    `statement_timeout` is enforced by the server, so it cannot end a query that never reached
    it; libpq's TCP bounds end a connection whose packets are dropped (unacknowledged data
    after `tcp_user_timeout`, an idle peer after the keepalive probes), and a checkout waits
    for a pooled connection at most as long as a statement may run. The key store adds a
    deadline of its own around every call (app/keys/store.py)."""
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
