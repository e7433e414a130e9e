"""Test databases: a migrated SQLite file, and a throw-away PostgreSQL database.

PostgreSQL tests skip with a reason when the server is unreachable on a developer's machine,
and fail when KEYSCOPE_TEST_REQUIRE_POSTGRES=1 (as `.ci/run` sets): CI must never go green
by skipping the production engine.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from keyscope.app.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "KEYSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("KEYSCOPE_TEST_REQUIRE_POSTGRES") == "1"


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'keyscope.db'}"


def postgres_unreachable_reason() -> str | None:
    engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        where = make_url(POSTGRES_ADMIN_URL).render_as_string()
        return f"PostgreSQL unreachable at {where}: {exc.orig}"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    reason = postgres_unreachable_reason()
    if reason is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"KEYSCOPE_TEST_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database on the test server; dropped afterwards."""
    require_postgres()
    name = f"keyscope_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = sqlite_url(directory)
        upgrade(url)
        yield url
        return
    with postgres_database() as url:
        upgrade(url)
        yield url
