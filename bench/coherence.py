"""`python -m bench.coherence`: what the cross-process cache check costs a warm request.

Two instances of the real keyscope bench app on one seeded database, driven in-process one
request at a time as `bench.breakdown` does (no sockets, no HTTP parsing): one with the
default `KEYSCOPE_CACHE_COHERENCE=auto` (a `PRAGMA data_version` per warm request on SQLite;
a look at the listener's socket on PostgreSQL), one with `single-process` (no check: the
fast path before the check existed). Rounds alternate between the two and the median CPU per
request of each is printed, with the spread over rounds: on a shared machine compare the two
rows of one run, not runs.
"""

import argparse
import asyncio
import contextlib
import importlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.breakdown import _cpu_us
from bench.databases import postgres_database, sqlite_database
from bench.environment import server_env
from bench.seeding import BenchUser, make_users, seed_keyscope
from bench.variants import VARIANTS
from keyscope.app.keys.store import KeyStore

PATH = "/bench/gemini"


def _app(url: str, coherence: str) -> tuple[Any, KeyStore]:
    """A fresh import of the bench app, configured by the environment as a server is."""
    warm = next(v for v in VARIANTS if v.name == "keyscope-warm")
    os.environ.clear()
    os.environ.update(server_env(warm.env({"sqlite": url, "postgresql": url})))
    os.environ["KEYSCOPE_DATABASE_URL"] = url
    os.environ["KEYSCOPE_CACHE_COHERENCE"] = coherence
    module = importlib.reload(importlib.import_module("bench.apps.keyscope"))
    return module.app, module.container.key_store()


def _check_ns(store: KeyStore, calls: int = 200_000) -> float:
    """Process CPU of the read path's check alone, in ns per call."""
    trusted = store.coherence.cache_trusted
    started = time.process_time_ns()
    for _ in range(calls):
        trusted()
    return (time.process_time_ns() - started) / calls


async def _measure(
    apps: dict[str, Any], stores: dict[str, KeyStore], users: list[BenchUser], args: Any
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        for app in apps.values():  # warm: tokens, records, code paths
            await _cpu_us(app, PATH, users, 2 * len(users))
        samples: dict[str, list[float]] = {name: [] for name in apps}
        checks: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.rounds):
            for name, app in apps.items():
                samples[name].append(await _cpu_us(app, PATH, users, args.requests))
                checks[name].append(_check_ns(stores[name]))
        assert all(s.coherence.cache_trusted() for s in stores.values()), "cache not warm"
    base = statistics.median(samples["single-process"])
    print(f"{'coherence':<16} {'CPU µs/request':>15} {'min-max over rounds':>20} {'vs off':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{name:<16} {median:>15.1f} {spread:>20} {100 * (median / base - 1):>+7.1f}%")
    for name, values in checks.items():
        check_us = statistics.median(values) / 1000
        print(
            f"check alone, {name}: {check_us:.2f} µs/call "
            f"({min(values) / 1000:.2f}-{max(values) / 1000:.2f}), "
            f"{100 * check_us / base:.1f}% of the check-free warm request"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.coherence", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000, help="per app and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="keyscope-coherence-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        if args.database == "sqlite":
            url: str | None = stack.enter_context(sqlite_database(Path(tmp)))
        else:
            url = stack.enter_context(postgres_database())
        if url is None:
            raise SystemExit("PostgreSQL is not reachable")
        users = make_users(args.users)
        seed_keyscope(url, users)
        built = {name: _app(url, name) for name in ("single-process", "auto")}
        apps = {name: app for name, (app, _) in built.items()}
        stores = {name: store for name, (_, store) in built.items()}
        asyncio.run(_measure(apps, stores, users, args))


if __name__ == "__main__":
    main()
