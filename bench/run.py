"""`python -m bench`: seed, start every variant, alternate them round by round, report.

Order of a run: micro-benchmarks (in-process, nothing else running); throw-away SQLite and
PostgreSQL databases migrated and seeded with 1,000 users; one single-worker uvicorn per
variant, pinned to CPU 1 (load generator and harness on CPU 0); a warm-up per server; then
rounds A B C ... A B C ..., each a timed load period (server CPU read from /proc before and
after) followed by a concurrent wrong-key check; then, unless `--no-workers`, the
multi-worker section (bench/workers.py: `--workers 2` against `--workers 1`, unpinned);
finally the tables on stdout and in bench/results/latest.{md,json}.
"""

import argparse
import json
import logging
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import micro
from bench import workers as workers_section
from bench.chart import svg
from bench.databases import postgres_database, sqlite_database
from bench.environment import server_env
from bench.load import LoadResult
from bench.load import wrk as wrk_load
from bench.report import Report, Round, Scaling, Summary, docs_block, replace_docs_block
from bench.seeding import make_users, seed_keyscope, seed_seed_design, write_users
from bench.server import REPO, Server, pin_prefix, start_server
from bench.variants import VARIANTS, Variant
from bench.wrongkey import check

log = logging.getLogger("bench")
RESULTS = REPO / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="load period per round")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before round 1")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--check-samples", type=int, default=200, help="per variant and round")
    parser.add_argument("--check-connections", type=int, default=64)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--variants", help="comma list (default: all)")
    parser.add_argument("--no-micro", action="store_true")
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="skip the multi-worker section (uvicorn --workers N against --workers 1 for "
        f"the selected ones of {', '.join(workers_section.SCALED)})",
    )
    parser.add_argument("--workers", type=int, default=2, help="N of the multi-worker section")
    parser.add_argument("--workers-rounds", type=int, default=3)
    parser.add_argument(
        "--workers-seconds", type=int, default=3, help="load period per round, workers section"
    )
    parser.add_argument(
        "--workers-recycle",
        type=int,
        default=workers_section.RECYCLE,
        help="workers section: one request in N closes its connection, which the load "
        "generator reopens, so connections spread over the workers (0: never)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where latest.md goes")
    parser.add_argument(
        "--docs",
        type=Path,
        help="also rewrite the generated block of DOCS/performance.md and DOCS/performance.svg",
    )
    return parser.parse_args(argv)


def pick_cpus() -> tuple[int | None, int | None]:
    """(server CPU, load-generator CPU): apart when there are two cores and taskset."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not pin_prefix(0):
        return None, None
    return cpus[1], cpus[0]


def machine(
    args: argparse.Namespace, generator: str, cpus: tuple[int | None, int | None]
) -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    server_cpu, load_cpu = cpus
    pinning = (
        f"server on CPU {server_cpu}, load generator and harness on CPU {load_cpu}"
        if server_cpu is not None
        else "none (fewer than 2 CPUs or no taskset)"
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit,
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} x {model}, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load generator": f"{generator}, 1 thread, {args.connections} keep-alive connections, "
        f"Authorization rotated over {args.users} users",
        "rounds": f"{args.rounds} x {args.seconds} s per variant, alternating; "
        f"{args.warmup} s warm-up per server",
        "pinning": pinning,
        "server": "uvicorn --workers 1 --loop uvloop --http httptools --no-access-log",
    }


def drive(
    server: Server,
    variant: Variant,
    tokens: Path,
    generator: str,
    args: argparse.Namespace,
    seconds: int,
    load_cpu: int | None,
    close_every: int = 0,
) -> LoadResult:
    if generator == "wrk":
        return wrk_load.run(
            server.port,
            variant.path,
            tokens,
            connections=args.connections,
            seconds=seconds,
            cpu=load_cpu,
            close_every=close_every,
        )
    command = [
        *pin_prefix(load_cpu),
        sys.executable,
        "-m",
        "bench.load.pyclient",
        str(server.port),
        variant.path,
        str(tokens),
        "--connections",
        str(args.connections),
        "--seconds",
        str(seconds),
        "--close-every",
        str(close_every),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, check=True, timeout=seconds + 60
    )
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def _histogram_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[int, int]:
    """Bench requests by the number of SQL statements each one caused, during one period."""
    old, new = before.get("queries_per_request", {}), after.get("queries_per_request", {})
    delta = {int(k): n - old.get(k, 0) for k, n in new.items()}
    return {k: n for k, n in sorted(delta.items()) if n}


def stop_all(servers: dict[str, Server]) -> None:
    for server in servers.values():
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)
    logging.getLogger("keyscope").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    wanted = set(args.variants.split(",")) if args.variants else {v.name for v in VARIANTS}
    variants = [v for v in VARIANTS if v.name in wanted | {"bare"}]  # the floor always runs
    generator = (
        "wrk"
        if args.loadgen == "wrk" or (args.loadgen == "auto" and wrk_load.available())
        else "python"
    )
    every_cpu = os.sched_getaffinity(0)  # the multi-worker section runs on all of them
    server_cpu, load_cpu = pick_cpus()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    log.info("load generator: %s; pinning: server=%s load=%s", generator, server_cpu, load_cpu)

    micro_results = [] if args.no_micro else micro.run_all()
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    (results / "logs").mkdir(exist_ok=True)
    unavailable: dict[str, str] = {}
    rounds: dict[str, list[Round]] = {v.name: [] for v in variants}
    rng = random.Random(5)

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keyscope-bench-")))
        urls = {"sqlite": stack.enter_context(sqlite_database(tmp))}
        if any(v.database == "postgresql" for v in variants):
            pg = stack.enter_context(postgres_database())
            if pg is None:
                for v in variants:
                    if v.database == "postgresql":
                        unavailable[v.name] = "PostgreSQL unreachable on 127.0.0.1:5432"
            else:
                urls["postgresql"] = pg
        variants = [v for v in variants if v.name not in unavailable]

        started = time.monotonic()
        users = make_users(args.users)
        for name, url in urls.items():
            seed_keyscope(url, users)
            log.info("seeded %d users x 3 keys through KeyStore.put on %s", len(users), name)
        seed_seed_design(urls["sqlite"], users)
        tokens, _ = write_users(tmp, users)
        log.info("seeding took %.1f s", time.monotonic() - started)

        servers: dict[str, Server] = {}
        stack.callback(stop_all, servers)
        for v in variants:
            servers[v.name] = start_server(
                v.name,
                v.module,
                server_env(v.env(urls)),
                cpu=server_cpu,
                log_dir=results / "logs",
                access_log=v.access_log,
            )
        for v in list(variants):
            servers[v.name].wait_ready()
            if v.legacy and not servers[v.name].stats().get("overlay_installed"):
                unavailable[v.name] = (
                    "create_app does not install the legacy overlay "
                    "(KEYSCOPE_LEGACY_ENV=overlay has no effect yet)"
                )
                servers.pop(v.name).stop()
                variants.remove(v)
        log.info("%d servers ready", len(servers))

        primed: dict[str, str] = {}
        for v in variants:
            warm = drive(servers[v.name], v, tokens, generator, args, args.warmup, load_cpu)
            log.info("warm-up %-17s %7.0f req/s, %d errors", v.name, warm.rps, warm.errors)
            if v.module != "bench.apps.bare":
                # One request per user: every warm cache holds every user before round 1, and
                # every user's answer is checked once.
                full = check(
                    servers[v.name].port,
                    v.path,
                    users,
                    samples=0,
                    connections=args.check_connections,
                    rng=rng,
                    everyone=True,
                )
                primed[v.name] = f"{full.wrong} wrong of {full.sampled} ({full.failed} failed)"
                log.info("primed  %-17s every user once: %s", v.name, primed[v.name])

        for number in range(1, args.rounds + 1):
            for v in variants:
                server = servers[v.name]
                before, cpu_before = server.stats(), server.cpu_seconds()
                load = drive(server, v, tokens, generator, args, args.seconds, load_cpu)
                cpu_after, after = server.cpu_seconds(), server.stats()
                result = None
                if v.module != "bench.apps.bare":
                    result = check(
                        server.port,
                        v.path,
                        users,
                        samples=args.check_samples,
                        connections=args.check_connections,
                        rng=rng,
                    )
                one = Round(
                    v.name,
                    number,
                    load,
                    after["requests"] - before["requests"],
                    after["queries"] - before["queries"],
                    cpu_after - cpu_before,
                    _histogram_delta(before, after),
                    result,
                )
                rounds[v.name].append(one)
                log.info(
                    "round %d %-17s %7.0f req/s  p99 %6.2f ms  %4.0f µs CPU/req  "
                    "%.3f q/req  wrong %s",
                    number,
                    v.name,
                    load.rps,
                    load.p99_ms,
                    one.cpu_us_per_request,
                    one.queries / max(one.served, 1),
                    "-" if result is None else f"{result.wrong}/{result.sampled}",
                )

        scaled = [] if args.no_workers else workers_section.scaled_variants(variants)
        scalings: list[Scaling] = []
        scaling_info: dict[str, str] = {}
        if scaled and args.workers > 1:
            stop_all(servers)  # idle, but the section has the machine to itself otherwise
            servers.clear()

            def unpinned(server: Server, variant: Variant, seconds: int) -> LoadResult:
                return drive(
                    server, variant, tokens, generator, args, seconds, None, args.workers_recycle
                )

            scalings, scaling_info = workers_section.run(
                scaled,
                urls,
                users,
                unpinned,
                workers_section.Section(
                    workers=args.workers,
                    rounds=args.workers_rounds,
                    seconds=args.workers_seconds,
                    # Every worker's caches are filled user by user before round 1: the
                    # load warm-up only starts the servers' pools and connections.
                    warmup=min(args.warmup, 1),
                    check_samples=args.check_samples,
                    check_connections=args.check_connections,
                ),
                cpus=every_cpu,
                log_dir=results / "logs",
                scratch=tmp,
                rng=rng,
            )
            scaling_info["load generator"] = (
                f"{generator}, as above, on the same CPUs as the servers; "
                + (
                    f"one request in {args.workers_recycle} closes its connection "
                    "(reopened at once)"
                    if args.workers_recycle
                    else "connections never reopened"
                )
                + (
                    " (the Python client may cap the multi-worker rows)"
                    if generator == "python"
                    else ""
                )
            )

    info = machine(args, generator, (server_cpu, load_cpu))
    info["every user once, before round 1"] = "; ".join(f"{k}: {v}" for k, v in primed.items())
    report = Report(
        machine=info,
        summaries=[Summary.of(v.name, v.label, rounds[v.name]) for v in variants],
        micro=micro_results,
        unavailable=unavailable,
        workers=scalings,
        workers_info=scaling_info,
    )
    report.compute_ratios()
    text = report.markdown()
    (results / "latest.md").write_text(text)
    (results / "latest.json").write_text(json.dumps(report.as_json(), indent=2, default=str))
    command = re.sub(r" --results[= ]\S+", "", info["command"])  # a local path: not for docs
    chart = svg(report.summaries, f"{info['date']}, commit {info['commit']}: {command}")
    (results / "performance.svg").write_text(chart)
    if args.docs is not None:
        (args.docs / "performance.svg").write_text(chart)
        page = args.docs / "performance.md"
        old = page.read_text() if page.exists() else "# Performance\n"
        page.write_text(replace_docs_block(old, docs_block(report, "performance.svg")))
        log.info("written: %s and performance.svg", page)
    print(text)
    log.info("written: %s, latest.json and performance.svg", results / "latest.md")
    return 0
