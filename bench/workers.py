"""The multi-worker section: `uvicorn --workers N` against `--workers 1`, in one run.

For the floor (`bare`) and keyscope's warm config route (SQLite, and PostgreSQL when
reachable), one server with one worker and one with N, started after the side-by-side rounds
have ended and their servers are stopped. Nothing is pinned here: N workers need N CPUs, so
servers, load generator and harness all share the machine's CPUs (on a 2-core machine the
load generator takes part of what the workers could use; the table says how much). Rounds
alternate (1 worker, N workers, next variant, ...) like the side-by-side ones.

Per round: req/s and p99 from the load generator; server CPU summed over the whole process
tree (supervisor and workers, bench/server.py); the load generator's own CPU (the harness's
reaped children); "other CPU use", the whole machine's busy CPU from /proc/stat less those two
(the harness, the database, other jobs on the machine); requests served per worker (each
worker's `/bench/stats`); then the wrong-key check. With N workers each has its own token and
record caches and its own coherence with the others (app/keys/coherence.py), so "0 wrong
keys" is checked here again.
"""

import asyncio
import json
import logging
import os
import random
import resource
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.environment import server_env
from bench.load import LoadResult
from bench.load.pyclient import build_request
from bench.report import Round, Scaling, Summary
from bench.seeding import BenchUser
from bench.server import CLOCK_TICKS, Server, start_server
from bench.variants import Variant
from bench.wrongkey import check

log = logging.getLogger("bench")

SCALED = ("bare", "keyscope-warm", "keyscope-pg-warm")
# Workers share one listening socket, and the worker that wakes first accepts what is
# pending: the load generator's connections, opened together, can all land on one worker
# (the floor's do, docs/performance.md). Reopening one connection in RECYCLE (the harness's
# `--workers-recycle`) lets them drift to the workers that have time to accept, as
# long-lived clients' connections do.
RECYCLE = 64

Drive = Callable[[Server, Variant, int], LoadResult]


@dataclass(frozen=True)
class Section:
    workers: int
    rounds: int
    seconds: int
    warmup: int
    check_samples: int
    check_connections: int


def _machine_busy_ticks() -> int:
    """Busy clock ticks of every CPU so far (everything but idle and iowait), /proc/stat."""
    # cpu  user nice system idle iowait irq softirq steal ...
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4]


def _children_cpu_seconds() -> float:
    """CPU of the harness's children it has waited for: the load generator, once it ends."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _unpinned(cpus: set[int]) -> Iterator[None]:
    """The harness (and so every process it starts) on `cpus` for the section."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _served(stats: dict[int, dict[str, Any]]) -> dict[int, int]:
    return {pid: int(body["requests"]) for pid, body in stats.items()}


def _histogram(
    before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]
) -> dict[int, int]:
    total: dict[int, int] = {}
    for pid, body in after.items():
        old = before.get(pid, {}).get("queries_per_request", {})
        for k, n in body.get("queries_per_request", {}).items():
            total[int(k)] = total.get(int(k), 0) + n - old.get(k, 0)
    return {k: n for k, n in sorted(total.items()) if n}


def _own_sqlite(urls: dict[str, str], copy: Path) -> dict[str, str]:
    """`urls` with the SQLite database copied for one server: a server's usage flushes
    commit to its file and send every other process on it down the miss path once (see
    app/keys/coherence.py), so the servers compared here do not share one."""
    source = make_url(urls["sqlite"]).database or ""
    copy.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    dst.close()
    src.close()
    return {**urls, "sqlite": f"sqlite:///{copy}"}


def scaled_variants(variants: list[Variant]) -> list[Variant]:
    """The selected variants the section runs: the floor plus the warm keyscope ones, or none
    when no warm keyscope variant was selected (the floor alone compares nothing)."""
    picked = [v for v in variants if v.name in SCALED]
    return picked if any(v.name != "bare" for v in picked) else []


def run(
    variants: list[Variant],
    urls: dict[str, str],
    users: list[BenchUser],
    drive: Drive,
    section: Section,
    *,
    cpus: set[int],
    log_dir: Path,
    scratch: Path,
    rng: random.Random,
) -> tuple[list[Scaling], dict[str, str]]:
    """The section's comparisons, and what it says about how it was run."""
    started = time.monotonic()
    counts = (1, section.workers)
    specs = [(v, n) for v in variants for n in counts]
    rounds: dict[tuple[str, int], list[Round]] = {(v.name, n): [] for v, n in specs}
    primed: dict[str, str] = {}
    servers: dict[tuple[str, int], Server] = {}
    with _unpinned(cpus):
        try:
            for v, n in specs:
                servers[v.name, n] = start_server(
                    f"{v.name}-workers-{n}",
                    v.module,
                    server_env(v.env(_own_sqlite(urls, scratch / f"{v.name}-{n}.db"))),
                    cpu=None,
                    log_dir=log_dir,
                    workers=n,
                )
            for server in servers.values():
                server.wait_ready()
            for v, n in specs:
                server = servers[v.name, n]
                warm = drive(server, v, section.warmup)
                log.info(
                    "warm-up %-17s --workers %d %7.0f req/s, %d errors",
                    v.name,
                    n,
                    warm.rps,
                    warm.errors,
                )
                if v.module != "bench.apps.bare":
                    primed[f"{v.name} --workers {n}"] = _prime(server, v, users, section, rng)
            for number in range(1, section.rounds + 1):
                for v, n in specs:
                    one = _round(servers[v.name, n], v, n, number, drive, section, users, rng)
                    rounds[v.name, n].append(one)
        finally:
            for server in servers.values():
                server.stop()
    scalings = [
        Scaling(
            v.name,
            v.label,
            section.workers,
            Summary.of(v.name, v.label, rounds[v.name, 1]),
            Summary.of(v.name, v.label, rounds[v.name, section.workers]),
        )
        for v in variants
    ]
    info = {
        "rounds": f"{section.rounds} x {section.seconds} s per server, alternating "
        f"(--workers {' then --workers '.join(map(str, counts))} per variant); "
        f"{section.warmup} s warm-up per server",
        "pinning": f"none: servers, load generator and harness share CPUs "
        f"{','.join(map(str, sorted(cpus)))}",
        "server": f"uvicorn --workers {{{','.join(map(str, counts))}}} --loop uvloop "
        "--http httptools --no-access-log",
        "every user once, before round 1": "; ".join(f"{k}: {v}" for k, v in primed.items()),
        "took": f"{time.monotonic() - started:.0f} s",
    }
    log.info("workers section took %.0f s", time.monotonic() - started)
    return scalings, info


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One request on a keep-alive connection: (status, body)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    return int(head[9:12]), await reader.readexactly(length)


async def _warm_every_worker(
    port: int, path: str, users: list[BenchUser], workers: int, per_worker: int = 8
) -> None:
    """Every user's request through every worker: connections are opened until each worker
    holds `per_worker` of them (a connection's worker is the pid its `/bench/stats` names),
    then each worker's connections share out the users."""
    stats = f"GET /bench/stats HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    owned: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
    extra: list[asyncio.StreamWriter] = []
    try:
        for _ in range(workers * per_worker * 20):
            if len(owned) == workers and all(len(c) >= per_worker for c in owned.values()):
                break
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            _, body = await _exchange(reader, writer, stats)
            mine = owned.setdefault(int(json.loads(body)["pid"]), [])
            if len(mine) < per_worker:
                mine.append((reader, writer))
            else:
                extra.append(writer)
        if len(owned) < workers:
            raise RuntimeError(f"{len(owned)} of {workers} workers accepted a connection")

        async def drive(
            conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], share: list[BenchUser]
        ) -> None:
            for user in share:
                status, _ = await _exchange(*conn, build_request(port, path, user.token))
                if status != 200:
                    raise RuntimeError(f"warming answered {status}")

        await asyncio.gather(
            *(
                drive(conn, users[i :: len(conns)])
                for conns in owned.values()
                for i, conn in enumerate(conns)
            )
        )
    finally:
        for writer in [w for conns in owned.values() for _, w in conns] + extra:
            writer.close()


def _prime(
    server: Server, variant: Variant, users: list[BenchUser], section: Section, rng: random.Random
) -> str:
    """Warm every worker's caches with every user (each worker has its own; a warm-up
    reaches a user's worker only by chance), then every user once, checked."""
    if server.workers > 1:
        asyncio.run(_warm_every_worker(server.port, variant.path, users, server.workers))
    full = check(
        server.port,
        variant.path,
        users,
        samples=0,
        connections=section.check_connections,
        rng=rng,
        everyone=True,
    )
    return f"{full.wrong} wrong of {full.sampled} ({full.failed} failed)"


def _round(
    server: Server,
    variant: Variant,
    workers: int,
    number: int,
    drive: Drive,
    section: Section,
    users: list[BenchUser],
    rng: random.Random,
) -> Round:
    before = server.stats_by_worker()
    cpu_before, busy_before = server.cpu_seconds(), _machine_busy_ticks()
    children_before, wall_before = _children_cpu_seconds(), time.monotonic()
    load = drive(server, variant, section.seconds)
    wall = time.monotonic() - wall_before
    cpu_after, busy_after = server.cpu_seconds(), _machine_busy_ticks()
    children_after = _children_cpu_seconds()
    after = server.stats_by_worker()
    result = None
    if variant.module != "bench.apps.bare":
        result = check(
            server.port,
            variant.path,
            users,
            samples=section.check_samples,
            connections=section.check_connections,
            rng=rng,
        )
    old, new = _served(before), _served(after)
    by_worker = sorted((n - old.get(pid, 0) for pid, n in new.items()), reverse=True)
    queries = sum(int(b["queries"]) for b in after.values()) - sum(
        int(b["queries"]) for b in before.values()
    )
    one = Round(
        f"{variant.name} --workers {workers}",
        number,
        load,
        sum(by_worker),
        queries,
        cpu_after - cpu_before,
        _histogram(before, after),
        result,
        wall_seconds=wall,
        loadgen_cpu_seconds=children_after - children_before,
        machine_busy_seconds=(busy_after - busy_before) / CLOCK_TICKS,
        served_by_worker=by_worker,
    )
    log.info(
        "round %d %-17s --workers %d %7.0f req/s  p99 %6.2f ms  %4.0f µs CPU/req  "
        "server %.2f CPUs  load generator %.2f  other %.2f  split %s  wrong %s",
        number,
        variant.name,
        workers,
        load.rps,
        load.p99_ms,
        one.cpu_us_per_request,
        one.server_cpus,
        one.loadgen_cpus,
        one.other_cpus,
        "/".join(map(str, by_worker)),
        "-" if result is None else f"{result.wrong}/{result.sampled}",
    )
    return one
