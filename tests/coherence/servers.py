"""Real `keyscope serve` processes on one database, for the cross-process tests."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx

from tests.support.settings import JWT_SECRET, MASTER_KEY_K1

START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, exa_base_url: str, **extra: str) -> dict[str, str]:
    """Production settings with test secrets; nothing inherited from the caller's KEYSCOPE_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYSCOPE_", "DEPLOY_ENV"))}
    env.update(
        KEYSCOPE_DEPLOY_ENV="production",
        KEYSCOPE_DATABASE_URL=database_url,
        KEYSCOPE_MASTER_KEYS=MASTER_KEY_K1,
        KEYSCOPE_JWT_SECRET=JWT_SECRET,
        KEYSCOPE_EXA_BASE_URL=exa_base_url,
        **extra,
    )
    return env


@contextmanager
def _launched(env: dict[str, str], workers: int) -> Iterator[tuple["subprocess.Popen[str]", str]]:
    """`keyscope serve --no-migrate` started on a free loopback port (not yet ready), stopped
    when the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "keyscope.app.cli", "serve", "--no-migrate"]
    command += ["--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _wait_ready(process: "subprocess.Popen[str]", base: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            ready = httpx.get(f"{base}/readyz", timeout=5)
            if ready.status_code == 200 and ready.json()["key_cache"] in (
                "listening",
                "sqlite-revisions",
                "single-process",
            ):
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            _, err = process.communicate()
            raise RuntimeError(f"keyscope serve exited: {err[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("keyscope serve did not become ready")
        time.sleep(0.2)


@contextmanager
def serving(env: dict[str, str], count: int, workers: int = 1) -> Iterator[list[str]]:
    """`count` servers on one database until the block ends; their URLs. They start side by
    side: most of a start is importing, which need not wait for the previous server."""
    with ExitStack() as stack:
        launched = [stack.enter_context(_launched(env, workers)) for _ in range(count)]
        for process, base in launched:
            _wait_ready(process, base)
        yield [base for _, base in launched]
