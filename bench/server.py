"""One single-worker uvicorn server per variant, and what the harness reads from it.

Servers run as `[taskset -c CPU] python -m uvicorn MODULE:app --workers 1` on loopback with
uvloop and httptools, access log off (the options of `keyscope serve`). `taskset` execs, so
the Popen pid is the server's own and `/proc/<pid>/stat` gives its CPU time (all threads, the
database worker threads included).
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


@dataclass
class Server:
    name: str
    port: int
    process: "subprocess.Popen[bytes]"
    log_path: Path

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (every thread), in seconds."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

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

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log_path}")
            try:
                self.stats()
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
) -> Server:
    """One server with `keyscope serve`'s options (app/cli.py): uvloop, httptools, info
    logging, the access log off unless asked for."""
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
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        *(["--access-log", "--log-level", "info"] if access_log else ["--no-access-log"]),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(name=name, port=port, process=process, log_path=log_path)
