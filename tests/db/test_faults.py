"""Database faults: unreachable means 503 problems and a failing /readyz, then recovery
without a restart."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy.engine import make_url

from keyscope.app.main import create_app
from keyscope.app.migrate import upgrade
from keyscope.app.routes.health import READY_TIMEOUT_SECONDS
from keyscope.containers import Container
from tests.support.databases import postgres_database
from tests.support.settings import make_settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


@asynccontextmanager
async def _client(database_url: str, timeout_ms: int = 2000) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, db_statement_timeout_ms=timeout_ms)
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
    with _proxied_postgres() as (proxy, proxied):
        async with _client(proxied) as client:
            await _assert_up(client, auth)
            proxy.cut()
            await _assert_down(client, auth)
            proxy.restore()
            await _assert_up(client, auth)


@contextmanager
def _proxied_postgres() -> Iterator[tuple[TcpProxy, str]]:
    """A migrated throw-away database, and its URL through a loopback proxy."""
    with postgres_database() as direct_url:
        upgrade(direct_url)
        parsed = make_url(direct_url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        try:
            yield proxy, proxied
        finally:
            proxy.resume()
            proxy.cut()


TIMEOUT_MS = 1000
# "About twice the configured timeout": the store gives up a call after the statement timeout
# plus one second; the rest is slack for a loaded machine.
REQUEST_BOUND_SECONDS = 2 * TIMEOUT_MS / 1000 + 1.0
READY_BOUND_SECONDS = READY_TIMEOUT_SECONDS + 1.0


async def _timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


@pytest.mark.slow
async def test_postgres_blackhole_fails_fast_then_recovers(auth: Auth) -> None:
    """A partition (packets dropped, no RST): every request is a 503 within about twice the
    timeout, /readyz answers within its limit, a burst larger than the pool gets 503s and no
    500, and the same app serves again once the network heals."""
    with _proxied_postgres() as (proxy, proxied):
        async with _client(proxied, timeout_ms=TIMEOUT_MS) as client:
            await _assert_up(client, auth)
            proxy.blackhole()
            for request in (
                client.get("/v1/keys", headers=auth("uncached-user")),
                client.put(
                    "/v1/keys/exa", json={"api_key": "exa-0123456789abc"}, headers=auth("bob")
                ),
                client.delete("/v1/keys/exa", headers=auth("alice")),
            ):
                response, seconds = await _timed(request)
                assert response.status_code == 503, response.text
                assert response.json()["type"].endswith("/database-unavailable")
                assert seconds < REQUEST_BOUND_SECONDS
            ready, seconds = await _timed(client.get("/readyz"))
            assert ready.status_code == 503
            assert seconds < READY_BOUND_SECONDS

            pool = 20  # pool_size + max_overflow in app.db.make_engine
            burst = [client.get("/v1/keys", headers=auth(f"burst-{i}")) for i in range(2 * pool)]
            started = time.monotonic()
            answers = await asyncio.gather(*burst)
            assert {a.status_code for a in answers} == {503}
            assert all("Traceback" not in a.text for a in answers)
            assert time.monotonic() - started < REQUEST_BOUND_SECONDS + READY_BOUND_SECONDS

            proxy.resume()
            deadline = time.monotonic() + 20
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "no recovery after the partition healed"
                await asyncio.sleep(0.2)
            await _assert_up(client, auth)
