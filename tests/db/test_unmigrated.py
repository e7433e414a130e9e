"""An unmigrated or behind-head database answers a clear 503 problem, and /readyz says so."""

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from dependency_injector import providers as di
from sqlalchemy import Engine, create_engine, text

from keyscope.app.db import make_engine
from keyscope.app.main import create_app
from keyscope.app.migrate import VERSION_TABLE, alembic_config, upgrade
from keyscope.containers import Container
from tests.support.databases import postgres_database, sqlite_url
from tests.support.settings import make_settings

SCHEMA_PROBLEM = "https://keyscope.dev/problems/schema-not-migrated"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody migrated, on each engine."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


async def _client_for(engine: Engine, url: str) -> AsyncIterator[httpx.AsyncClient]:
    container = Container(settings=di.Object(make_settings(url)), engine=di.Object(engine))
    app = create_app(container)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://keyscope.test") as c:
            yield c


@pytest.fixture
async def client(
    empty_engine: Engine, empty_url: str, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[httpx.AsyncClient]:
    with caplog.at_level(logging.ERROR, logger="keyscope"):
        async for c in _client_for(empty_engine, empty_url):
            yield c


def _assert_schema_problem(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == SCHEMA_PROBLEM
    assert "keyscope migrate" in body["detail"]


@pytest.mark.anyio
async def test_unmigrated_database_answers_schema_problem(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    """Every key route answers 503 schema-not-migrated, not 'unreachable' nor a bare 500."""
    headers = auth("alice")
    put = await client.put("/v1/keys/gemini", json={"api_key": "k-alice-1"}, headers=headers)
    _assert_schema_problem(put)
    _assert_schema_problem(await client.get("/v1/keys", headers=headers))
    _assert_schema_problem(await client.delete("/v1/keys/gemini", headers=headers))
    _assert_schema_problem(await client.get("/readyz"))


@pytest.mark.anyio
async def test_unmigrated_database_is_logged_at_startup(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Start-up logs one error naming the fix before any request arrives."""
    assert any(
        "not migrated" in r.getMessage() and "keyscope migrate" in r.getMessage()
        for r in caplog.get_records("setup")
        if r.levelno == logging.ERROR
    )


@pytest.mark.anyio
async def test_behind_head_is_not_ready(empty_engine: Engine, empty_url: str) -> None:
    """A database whose recorded revision is not head makes /readyz 503, and ready once migrated."""
    upgrade(empty_url)
    raw = create_engine(empty_url)
    with raw.begin() as conn:  # pretend an older revision is recorded (keyscope has one)
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'older'"))  # noqa: S608
    raw.dispose()
    async for c in _client_for(empty_engine, empty_url):
        response = await c.get("/readyz")
        # An unknown revision reads as *newer* than this code (a rolling deploy): still ready.
        assert response.status_code == 200
    command.stamp(alembic_config(empty_url), "base", purge=True)
    async for c in _client_for(empty_engine, empty_url):
        response = await c.get("/readyz")
        _assert_schema_problem(response)
        assert "not migrated" in response.json()["detail"]
    command.stamp(alembic_config(empty_url), "head")
    async for c in _client_for(empty_engine, empty_url):
        assert (await c.get("/readyz")).status_code == 200
