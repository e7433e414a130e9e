"""Test databases: a migrated SQLite file, and a throw-away PostgreSQL database (the testing
kit's, `keyscope.app.testing.postgres_database`, which adopters use too).

PostgreSQL tests skip with a reason when the server is unreachable on a developer's machine,
and fail when KEYSCOPE_TEST_REQUIRE_POSTGRES=1 (as `.ci/run` sets): CI must never go green
by skipping the production engine (`keyscope.app.testing.require_postgres`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keyscope.app import testing
from keyscope.app.migrate import upgrade
from keyscope.app.testing import require_postgres


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'keyscope.db'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database on the test server (skips or fails when unreachable)."""
    with testing.postgres_database(require_postgres()) as url:
        yield url


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
