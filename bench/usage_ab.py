"""`python -m bench.usage_ab`: the warm path's CPU per request with usage tracking on vs off.

Two keyscope apps on one seeded SQLite database, identical but for KEYSCOPE_USAGE_TRACKING,
driven in-process (no sockets, as in bench.breakdown) through a route that injects a Gemini
client (the hook runs where a client is built). Rounds alternate off/on so drift on a shared
machine hits both; each round's on/off ratio is kept, and the median ratio is reported with
the spread (min-max) across rounds. The flush thread of the "on" app runs at its normal
interval and its CPU is process CPU, so it is included.

Because whole-request ratios on a shared machine spread widely, the hook is also timed alone
(`UsageTracker.record`, rotating over the users, as the request path calls it) and set
against the median warm request of the same run.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dependency_injector import providers as di
from fastapi import FastAPI
from pydantic import SecretStr

from bench.breakdown import _call
from bench.databases import sqlite_database
from bench.environment import JWT_SECRET, MASTER_KEYS
from bench.seeding import BenchUser, make_users, seed_keyscope
from keyscope.app.main import create_app
from keyscope.app.settings import Settings
from keyscope.containers import Container

PATH = "/ab/client"


def _app(url: str, tracking: bool) -> FastAPI:
    from keyscope.app.deps import GeminiDep

    settings = Settings(
        _env_file=None,
        deploy_env="production",
        database_url=url,
        master_keys=SecretStr(MASTER_KEYS),
        jwt_secret=SecretStr(JWT_SECRET),
        usage_tracking=tracking,
        key_validation=False,
        # Warm for the whole run: a TTL expiring mid-round would turn one round into misses.
        key_cache_ttl=24 * 3600,
    )
    app = create_app(Container(settings=di.Object(settings)))

    @app.get(PATH)
    async def client(gemini: GeminiDep) -> dict[str, str]:
        return {"base": gemini.base_url}

    return app


async def _cpu_us(app: Callable[..., Awaitable[None]], users: list[BenchUser], n: int) -> float:
    started = time.process_time()
    for i in range(n):
        if await _call(app, PATH, users[i % len(users)].token) != 200:
            raise RuntimeError(f"{PATH} did not answer 200")
    return (time.process_time() - started) * 1e6 / n


async def measure(url: str, users: list[BenchUser], args: Any) -> None:
    apps = {"off": _app(url, False), "on": _app(url, True)}
    async with (
        apps["off"].router.lifespan_context(apps["off"]),
        apps["on"].router.lifespan_context(apps["on"]),
    ):
        for app in apps.values():  # warm tokens, records, code paths
            await _cpu_us(app, users, len(users))
        samples: dict[str, list[float]] = {"off": [], "on": []}
        ratios = []
        for round_no in range(args.rounds):
            order = ("off", "on") if round_no % 2 == 0 else ("on", "off")
            for name in order:
                samples[name].append(await _cpu_us(apps[name], users, args.requests))
            ratios.append(samples["on"][-1] / samples["off"][-1])
    off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
    hook = _record_cost_us(apps["on"], users)
    print(f"usage tracking off: {off:.1f} µs/request (median of {args.rounds} rounds)")
    print(f"usage tracking on:  {on:.1f} µs/request")
    print(
        f"on/off per round: median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}"
    )
    print(f"UsageTracker.record alone: {hook:.2f} µs/call = {100 * hook / off:.2f} % of a request")


def _record_cost_us(app: FastAPI, users: list[BenchUser], calls: int = 200_000) -> float:
    """The hook alone: `UsageTracker.record` (median of 5 timings)."""
    from keyscope.app.keys.policy import KeyOrigin
    from keyscope.providers import ProviderName

    tracker = app.state.container.usage()
    ids = [u.user_id for u in users]
    timings = []
    for _ in range(5):
        started = time.process_time()
        for i in range(calls):
            tracker.record(ids[i % len(ids)], ProviderName.GEMINI, KeyOrigin.USER)
        timings.append((time.process_time() - started) * 1e6 / calls)
    tracker.flush()
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.usage_ab", description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000, help="per app and round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="keyscope-usage-ab-") as tmp,
        sqlite_database(Path(tmp)) as url,
    ):
        users = make_users(args.users)
        seed_keyscope(url, users)
        asyncio.run(measure(url, users, args))


if __name__ == "__main__":
    main()
