"""Drive a server with wrk (one thread, N keep-alive connections, Lua-rotated tokens)."""

import json
import shutil
import subprocess
from pathlib import Path

from bench.load import LoadResult
from bench.server import pin_prefix

SCRIPT = Path(__file__).with_name("rotate.lua")


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    port: int,
    path: str,
    tokens: Path,
    *,
    connections: int,
    seconds: int,
    cpu: int | None,
    close_every: int = 0,
) -> LoadResult:
    """`close_every` > 0: one request in that many asks the server to close its connection
    (wrk opens a new one), as rotate.lua says."""
    command = [
        *pin_prefix(cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        path,
        str(tokens),
        str(close_every),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    for line in done.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            data = json.loads(line.removeprefix("BENCHJSON "))
            return LoadResult(
                generator="wrk",
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                errors=int(data["errors"]),
            )
    raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]!r} {done.stderr[-500:]!r}")
