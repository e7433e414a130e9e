"""Database faults: unreachable means 503 problems and a failing /readyz, then recovery
without a restart."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy.engine import make_url

from keyscope.app.main import create_app
from keyscope.app.migrate import upgrade
from keyscope.containers import Container
from tests.support.databases import postgres_database
from tests.support.settings import make_settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


@asynccontextmanager
async def _client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, db_statement_timeout_ms=2000)
    app = create_app(Container(settings=di.Object(settings)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def _assert_down(client: httpx.AsyncClient, auth: Auth) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    for response in (
        # A user whose records are not cached (a cached user is still served: by design).
        await client.get("/v1/keys", headers=auth("uncached-user")),
        await client.put(
            "/v1/keys/exa", json={"api_key": "exa-0123456789abc"}, headers=auth("alice")
        ),
    ):
        assert response.status_code == 503
        assert response.json()["type"].endswith("/database-unavailable")
        assert "Traceback" not in response.text


async def _assert_up(client: httpx.AsyncClient, auth: Auth) -> None:
    assert (await client.get("/readyz")).status_code == 200
    put = await client.put(
        "/v1/keys/exa", json={"api_key": "exa-0123456789abc"}, headers=auth("alice")
    )
    assert put.status_code == 200
    assert (await client.get("/v1/keys", headers=auth("alice"))).status_code == 200


async def test_sqlite_missing_volume_then_recovery(tmp_path: Path, auth: Auth) -> None:
    """A SQLite file whose directory is missing gives 503s; once it exists, requests succeed."""
    url = f"sqlite:///{tmp_path / 'not-mounted' / 'keyscope.db'}"
    async with _client(url) as client:
        await _assert_down(client, auth)
        upgrade(url)  # the volume appears and is migrated; the app is not restarted
        await _assert_up(client, auth)


async def test_postgres_connection_lost_then_recovery(auth: Auth) -> None:
    """PostgreSQL behind a cut proxy gives 503s; restored, the same app serves again."""
    with postgres_database() as direct_url:
        upgrade(direct_url)
        parsed = make_url(direct_url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        try:
            async with _client(proxied) as client:
                await _assert_up(client, auth)
                proxy.cut()
                await _assert_down(client, auth)
                proxy.restore()
                await _assert_up(client, auth)
        finally:
            proxy.cut()
