"""The shipped testing kit's PostgreSQL helpers: a throw-away database, and the skip that CI
turns into a failure."""

import pytest
from sqlalchemy import create_engine, text

from keyscope.app.testing import (
    postgres_admin_url,
    postgres_database,
    postgres_unreachable,
    require_postgres,
)
from tests.support.providers import refusing_url

PASSWORD = "kit-test-password-never-shown"


def _exists(admin_url: str, name: str) -> bool:
    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            return conn.execute(query, {"name": name}).first() is not None
    finally:
        engine.dispose()


def test_postgres_database_is_fresh_and_dropped_even_while_in_use() -> None:
    """An empty database of its own, named with the prefix, dropped on exit although a
    connection to it is still open."""
    admin = require_postgres()
    with postgres_database(admin, prefix="kit_probe") as url:
        name = url.rsplit("/", 1)[-1]
        assert name.startswith("kit_probe_")
        assert _exists(admin, name)
        engine = create_engine(url)
        conn = engine.connect()  # left open on purpose
        tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
        assert tables.scalar_one() == 0
    assert not _exists(admin, name)
    engine.dispose()


def test_unreachable_server_skips_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that refuses connections: the reason names where (never the password); the
    test is skipped, or failed with KEYSCOPE_TEST_REQUIRE_POSTGRES=1."""
    with refusing_url() as base:
        url = base.replace("http://", f"postgresql+psycopg://postgres:{PASSWORD}@") + "/postgres"
        reason = postgres_unreachable(url)
        assert reason is not None
        assert "PostgreSQL unreachable at" in reason
        assert PASSWORD not in reason
        monkeypatch.delenv("KEYSCOPE_TEST_REQUIRE_POSTGRES", raising=False)
        with pytest.raises(pytest.skip.Exception):
            require_postgres(url)
        monkeypatch.setenv("KEYSCOPE_TEST_REQUIRE_POSTGRES", "1")
        with pytest.raises(pytest.fail.Exception, match="KEYSCOPE_TEST_REQUIRE_POSTGRES=1"):
            require_postgres(url)


def test_admin_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://x@127.0.0.1:1/y")
    assert postgres_admin_url() == "postgresql+psycopg://x@127.0.0.1:1/y"
    monkeypatch.delenv("KEYSCOPE_TEST_POSTGRES_URL")
    assert postgres_admin_url().startswith("postgresql+psycopg://postgres@127.0.0.1:5432/")
