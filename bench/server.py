"""One uvicorn server per variant, and what the harness reads from it.

Servers run as `[taskset -c CPU] python -m uvicorn MODULE:app --workers N` on loopback with
uvloop and httptools, access log off (the options of `keyscope serve`); N is 1 except in the
multi-worker section (bench/workers.py). `taskset` execs, so the Popen pid is the server's
own; its CPU time is read from `/proc/<pid>/stat` (all threads, the database worker threads
included) summed over the process and its descendants (a `--workers N` supervisor and its
worker processes).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


def pin_prefix(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant. Parents are read from /proc/*/stat: the kernel's
    `/proc/<pid>/task/<tid>/children` lists exist only with CONFIG_PROC_CHILDREN."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        one = pending.pop()
        tree.append(one)
        pending.extend(children.get(one, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (every thread of each), in seconds."""
    ticks = 0
    for one in process_tree(pid):
        fields = _stat_fields(one)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


@dataclass
class Server:
    name: str
    port: int
    process: "subprocess.Popen[bytes]"
    log_path: Path
    workers: int = 1

    def cpu_seconds(self) -> float:
        """utime + stime of the server's process tree (every thread), in seconds."""
        return tree_cpu_seconds(self.process.pid)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body.decode(errors="replace")

    def stats(self) -> dict[str, Any]:
        status, body = self.get("/bench/stats")
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"{self.name}: /bench/stats answered {status}: {body!r}")
        return body

    def stats_by_worker(self, attempts: int = 200) -> dict[int, dict[str, Any]]:
        """Every worker's `/bench/stats`, by worker pid. The workers share one listening
        socket, so each new connection lands on whichever accepts it first: ask again until
        every worker has answered."""
        answers: dict[int, dict[str, Any]] = {}
        for _ in range(attempts):
            body = self.stats()
            answers[int(body["pid"])] = body
            if len(answers) >= self.workers:
                return answers
        raise RuntimeError(
            f"{self.name}: {len(answers)} of {self.workers} workers answered /bench/stats"
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log_path}")
            try:
                self.stats_by_worker(attempts=20)
                return
            except (OSError, RuntimeError):
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str,
    module: str,
    env: dict[str, str],
    *,
    cpu: int | None,
    log_dir: Path,
    access_log: bool = False,
    workers: int = 1,
) -> Server:
    """One server with `keyscope serve`'s options (app/cli.py): uvloop, httptools, info
    logging, the access log off unless asked for; `cpu=None` leaves it on the CPUs the
    harness itself may use."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    command = [
        *pin_prefix(cpu),
        sys.executable,
        "-m",
        "uvicorn",
        f"{module}:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        *(["--access-log", "--log-level", "info"] if access_log else ["--no-access-log"]),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(name=name, port=port, process=process, log_path=log_path, workers=workers)
