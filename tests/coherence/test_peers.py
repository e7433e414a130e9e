"""Several processes on one database: after a PUT or DELETE is acknowledged by one process,
no process serves the old or deleted key (cache on, default TTL).

Real `keyscope serve` processes (two instances, and one with `--workers 2`), on one
PostgreSQL database and on one SQLite file. 20 users x 20 writes (KEYSCOPE_TEST_PEER_WRITES
sets the count per user; docs/scale-out.md's figures were measured with 50), written through
the processes in turn; after each acknowledged write, a provider call through every process
(with `--workers 2`, several calls on fresh connections, which the workers share).
"""

import asyncio
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from keyscope.app.migrate import upgrade
from keyscope.app.security.tokens import mint_token
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from tests.coherence.servers import server_env, serving
from tests.support.databases import postgres_database, sqlite_url
from tests.support.load import CLIENT_TIMEOUT
from tests.support.settings import JWT_SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 20
WRITES_PER_USER = int(os.environ.get("KEYSCOPE_TEST_PEER_WRITES", "20"))
DELETE_EVERY = 5  # every fifth write is a DELETE
CALLS_PER_WORKER_SET = 4  # with --workers N, calls per write on fresh connections


@dataclass
class Outcome:
    calls: int = 0
    stale: list[str] = field(default_factory=list)
    first_read_ms: list[float] = field(default_factory=list)


class KeysByTag:
    """Which keys the fake Exa saw for each query tag, read incrementally: rescanning (and
    re-parsing) every record on every call made the check quadratic in the run's length."""

    def __init__(self, fakes: FakeUpstreams) -> None:
        self._fakes = fakes
        self._read = 0
        self._keys: dict[str, list[str | None]] = defaultdict(list)

    def keys_for(self, tag: str) -> list[str | None]:
        records = self._fakes.records(ProviderName.EXA)
        for record in records[self._read :]:
            self._keys[record.json()["query"]].append(record.key)
        self._read = len(records)
        return self._keys.get(tag, [])


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        yield url
        return
    with postgres_database() as url:
        upgrade(url)
        yield url


async def _user_run(
    user: str, bases: list[str], calls_per_base: int, seen: KeysByTag, outcome: Outcome
) -> None:
    headers = {"Authorization": f"Bearer {mint_token(JWT_SECRET, user)}"}
    # No keep-alive: with `--workers N` each call may land on any worker.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:
        for write in range(WRITES_PER_USER):
            writer = bases[write % len(bases)]
            expected: str | None
            if write % DELETE_EVERY == DELETE_EVERY - 1:
                ack = await client.delete(f"{writer}/v1/keys/exa", headers=headers)
                assert ack.status_code == 204, ack.text
                expected = None
            else:
                expected = f"exa-{user}-{write:03d}-0123456789"
                ack = await client.put(
                    f"{writer}/v1/keys/exa", json={"api_key": expected}, headers=headers
                )
                assert ack.status_code == 200, ack.text
            acked = time.perf_counter()
            for n, base in enumerate(b for b in bases for _ in range(calls_per_base)):
                tag = f"{user}|{write}|{n}"
                response = await client.post(
                    f"{base}/v1/exa/search", json={"query": tag, "num_results": 1}, headers=headers
                )
                if n == 0:
                    outcome.first_read_ms.append((time.perf_counter() - acked) * 1000)
                outcome.calls += 1
                if expected is None:
                    if response.status_code != 409:
                        outcome.stale.append(f"{tag}: deleted key used ({response.status_code})")
                    continue
                if response.status_code == 409:  # the state before a PUT that re-created it
                    outcome.stale.append(f"{tag}: key missing after it was stored")
                    continue
                assert response.status_code == 200, response.text
                keys = seen.keys_for(tag)
                if keys != [expected]:
                    saw = "none" if not keys else "older key" if expected not in keys else "twice"
                    outcome.stale.append(f"{tag}: upstream saw {saw} ({len(keys)} calls)")


async def _run(bases: list[str], calls_per_base: int, fakes: FakeUpstreams) -> Outcome:
    outcome = Outcome()
    users = [f"peer-user-{i:02d}" for i in range(USERS)]
    seen = KeysByTag(fakes)
    await asyncio.gather(*(_user_run(u, bases, calls_per_base, seen, outcome) for u in users))
    return outcome


def _report(label: str, outcome: Outcome) -> None:
    ms = sorted(outcome.first_read_ms)
    p99 = ms[int(0.99 * (len(ms) - 1))]
    print(  # pytest -s shows it; the README quotes these runs
        f"{label}: {outcome.calls} calls after {len(ms)} acknowledged writes, "
        f"{len(outcome.stale)} stale; ack -> first read answered: p50 "
        f"{statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )


@pytest.mark.parametrize(
    ("instances", "workers"), [(2, 1), (1, 2)], ids=["2-instances", "workers-2"]
)
async def test_no_process_serves_a_replaced_or_deleted_key(
    shared_database: str, instances: int, workers: int
) -> None:
    """0 responses from any process use the old or deleted key after the write's ack."""
    with FakeUpstreams() as fakes:
        env = server_env(shared_database, fakes.exa_base_url)
        with serving(env, instances, workers=workers) as bases:
            calls_per_base = CALLS_PER_WORKER_SET if workers > 1 else 1
            outcome = await _run(bases, calls_per_base, fakes)
            _report(f"{instances} x --workers {workers}", outcome)
            assert outcome.calls == USERS * WRITES_PER_USER * instances * calls_per_base
            assert outcome.stale == []


async def test_control_without_coherence_peers_do_serve_stale_keys(
    shared_database: str,
) -> None:
    """Control: with peers' writes ignored (`single-process`), the same check finds stale
    reads, so the test above can fail."""
    with FakeUpstreams() as fakes:
        env = server_env(
            shared_database, fakes.exa_base_url, KEYSCOPE_CACHE_COHERENCE="single-process"
        )
        with serving(env, 2) as bases:
            outcome = Outcome()
            users = [f"control-user-{i}" for i in range(4)]
            seen = KeysByTag(fakes)
            await asyncio.gather(*(_user_run(u, bases, 1, seen, outcome) for u in users))
            assert outcome.stale != []
