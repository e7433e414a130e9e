"""Throw-away databases for one run: a SQLite file and, when reachable, a PostgreSQL database.

Both are built by keyscope's own migrations (`app.migrate.upgrade`) and removed afterwards.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from keyscope.app.migrate import upgrade

log = logging.getLogger("bench")

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    url = f"sqlite:///{directory / 'bench.db'}"
    upgrade(url)
    yield url  # the file goes with the run's temporary directory


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A migrated throw-away database on 127.0.0.1:5432 (trust auth), or None if unreachable."""
    name = f"keyscope_bench_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        log.warning("PostgreSQL at 127.0.0.1:5432 unreachable (%s): pg variants skipped", exc)
        yield None
        return
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = PG_URL.format(name=name)
            upgrade(url)
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
