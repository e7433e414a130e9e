"""The PostgreSQL listener in one process: peers' writes evict, its loss fails closed.

The "peer" is a second container on the same database whose store writes (and notifies)
exactly as another process's would; the app under test runs its own listener.
"""

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy import create_engine, text

from keyscope.app.awaitables import awaited
from keyscope.app.keys.listener import PostgresNotify
from keyscope.app.keys.models import provider_keys
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.main import create_app
from keyscope.app.migrate import upgrade
from keyscope.app.scope import request_scope
from keyscope.containers import Container
from keyscope.providers import ProviderName
from tests.support.databases import postgres_database
from tests.support.settings import TokenFactory, make_settings

pytestmark = pytest.mark.anyio

Headers = dict[str, str]


@dataclass
class Setup:
    url: str
    app: Container  # the process under test (its lifespan runs the listener)
    peer: Container  # another process writing to the same database
    client: httpx.AsyncClient

    @property
    def listener(self) -> PostgresNotify:
        coherence = self.app.key_store().coherence
        assert isinstance(coherence, PostgresNotify)
        return coherence


@asynccontextmanager
async def _setup(**overrides: float) -> AsyncIterator[Setup]:
    with postgres_database() as url:
        upgrade(url)
        app_container = Container(settings=di.Object(make_settings(url, **overrides)))
        peer = Container(settings=di.Object(make_settings(url)))
        app = create_app(app_container)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                try:
                    yield Setup(url, app_container, peer, client)
                finally:
                    peer.engine().dispose()


async def _key_seen(container: Container, user: str, token: str) -> str | None:
    """The Exa key a request of `user` would use in `container`'s process."""
    with request_scope({"authorization": f"Bearer {token}"}):
        keys: UserKeys = await awaited(container.user_keys())
        resolved = keys.get(ProviderName.EXA)
        return resolved.secret.reveal() if resolved is not None else None


async def _wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _terminate(url: str, pid: int) -> None:
    """pg_terminate_backend of our own listener only: this test's database, this pid."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid = :pid "
                    "AND application_name LIKE 'keyscope-listener-%'"
                ),
                {"pid": pid},
            ).scalar()
        assert killed is True
    finally:
        engine.dispose()


def _peer_write_and_time_eviction(s: Setup, user: str) -> float:
    """In a worker thread: one peer transaction that touches the user's row and notifies;
    then how long after its commit returned this process's cache had evicted the user (ms)."""
    cache = s.app.record_cache()
    before = cache.generation(user)
    peer_coherence = s.peer.key_store().coherence
    with s.peer.engine().begin() as conn:
        conn.execute(
            provider_keys.update()
            .where(provider_keys.c.user_id == user)
            .values(updated_at=datetime.now(UTC))
        )
        peer_coherence.record_write(conn, (user,))
    committed = time.perf_counter()
    while cache.generation(user) == before:
        assert time.perf_counter() - committed < 2, "no eviction within 2 s"
        time.sleep(0)  # lets the listener thread run
    return (time.perf_counter() - committed) * 1000


async def test_peer_writes_evict_at_once_and_latency(make_token: TokenFactory) -> None:
    """Every peer write evicts the user in this process; reports the latency from the peer's
    commit to the eviction (p50/p99/max over 200 writes)."""
    async with _setup() as s:
        assert s.listener.state == "listening"
        token = make_token("lat-user")
        cache = s.app.record_cache()
        before = cache.generation("lat-user")
        await s.peer.key_store().put("lat-user", ProviderName.EXA, "exa-lat-0123456789")
        await _wait_for(lambda: cache.generation("lat-user") != before, 2)  # its eviction
        latencies: list[float] = []
        for _ in range(200):
            assert await _key_seen(s.app, "lat-user", token) == "exa-lat-0123456789"
            assert "lat-user" in cache.snapshot()  # cached, so the eviction is observable
            latencies.append(
                await anyio.to_thread.run_sync(_peer_write_and_time_eviction, s, "lat-user")
            )
            assert "lat-user" not in cache.snapshot()
        latencies.sort()
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(
            f"commit -> eviction in the listening process, {len(latencies)} writes: p50 "
            f"{statistics.median(latencies):.3f} ms, p99 {p99:.3f} ms, "
            f"max {latencies[-1]:.3f} ms"
        )


async def test_listener_loss_reads_through_and_caching_resumes(make_token: TokenFactory) -> None:
    """Listener killed: the cache is flushed and bypassed (writes during the outage are
    seen at once), /readyz says so; once re-LISTENed, caching resumes and evicts again."""
    async with _setup(listener_retry=1.5) as s:
        token = make_token("outage-user")
        cache = s.app.record_cache()
        store = s.peer.key_store()
        before = cache.generation("outage-user")
        await store.put("outage-user", ProviderName.EXA, "exa-before-0123456789")
        await _wait_for(lambda: cache.generation("outage-user") != before, 2)  # its eviction
        assert await _key_seen(s.app, "outage-user", token) == "exa-before-0123456789"
        assert "outage-user" in cache.snapshot()

        pid = s.listener.backend_pid
        assert pid is not None
        _terminate(s.url, pid)
        await _wait_for(lambda: s.listener.state == "reconnecting", 5)
        assert not cache.serving
        assert cache.snapshot() == {}
        ready = (await s.client.get("/readyz")).json()
        assert ready["key_cache"] == "reconnecting"
        for n in range(5):  # writes during the outage: their notifications are lost
            key = f"exa-outage-{n}-0123456789"
            await store.put("outage-user", ProviderName.EXA, key)
            assert await _key_seen(s.app, "outage-user", token) == key
            assert await _key_seen(s.app, "outage-user", token) == key
        assert cache.snapshot() == {}

        await _wait_for(lambda: s.listener.state == "listening", 10)
        assert s.listener.backend_pid not in (None, pid)
        assert (await s.client.get("/readyz")).json()["key_cache"] == "listening"
        assert await _key_seen(s.app, "outage-user", token) == "exa-outage-4-0123456789"
        assert "outage-user" in cache.snapshot()  # caching resumed
        await store.delete("outage-user", ProviderName.EXA)
        await _wait_for(lambda: "outage-user" not in cache.snapshot(), 2)
        assert await _key_seen(s.app, "outage-user", token) is None


async def test_stop_wakes_the_listener_instead_of_waiting_out_its_heartbeat() -> None:
    """`stop()` ends the listening thread at once: it is not left to notice at its next
    heartbeat (30 s here; the bound below is half of it, so a loaded machine still passes)."""
    async with _setup(listener_heartbeat=30) as s:
        listener = s.listener
        assert listener.state == "listening"
        started = time.monotonic()
        await anyio.to_thread.run_sync(listener.stop)
        assert time.monotonic() - started < 15
        assert listener.state == "stopped"
