"""The platform quota holds across processes: two uvicorn servers on one database serve
exactly the quota between them; every other request is a 429 with Retry-After."""

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
from sqlalchemy import Engine, select

from keyscope.app.keys.models import platform_quota_usage
from keyscope.app.security.tokens import mint_token
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from tests.support.settings import JWT_SECRET, MASTER_KEY_K1

QUOTA = 7
REQUESTS = 40  # per user, spread over both servers
USERS = ("al", "bo")
PLATFORM_EXA = "platform-exa-0123456789"
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@contextmanager
def _server(database_url: str, upstreams: FakeUpstreams) -> Iterator[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KEYSCOPE_") and not key.endswith("_API_KEY")
    }
    env.update({
        "KEYSCOPE_DEPLOY_ENV": "production",
        "KEYSCOPE_DATABASE_URL": database_url,
        "KEYSCOPE_MASTER_KEYS": MASTER_KEY_K1,
        "KEYSCOPE_JWT_SECRET": JWT_SECRET,
        "KEYSCOPE_EXA_BASE_URL": upstreams.exa_base_url,
        "KEYSCOPE_PLATFORM_FALLBACK": "exa",
        "KEYSCOPE_PLATFORM_QUOTA": f"exa:{QUOTA}",
        "EXA_API_KEY": PLATFORM_EXA,
    })  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "keyscope.app.asgi:app",
         "--host", "127.0.0.1", "--port", "0", "--log-level", "info", "--no-access-log"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield _wait_listening(process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_listening(process: "subprocess.Popen[str]") -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = _LISTENING.search(line)
        if match:
            return f"http://127.0.0.1:{match.group(1)}"
    raise RuntimeError("server did not start: " + "".join(seen)[-2000:])


async def _fire(urls: list[str]) -> list[tuple[str, int, str | None]]:
    tokens = {user: mint_token(JWT_SECRET, user) for user in USERS}
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int, user: str) -> tuple[str, int, str | None]:
            response = await client.post(
                urls[i % 2] + "/v1/exa/search",
                json={"query": f"q{i}"},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            return user, response.status_code, response.headers.get("retry-after")

        return await asyncio.gather(*(one(i, user) for i in range(REQUESTS) for user in USERS))


def test_two_processes_serve_exactly_the_quota(
    database_url: str, upstreams: FakeUpstreams, clean_engine: Engine
) -> None:
    """Each user gets exactly QUOTA platform-key answers across both processes; the rest 429."""
    upstreams.clear()
    with ExitStack() as stack:
        urls = [stack.enter_context(_server(database_url, upstreams)) for _ in range(2)]
        results = asyncio.run(_fire(urls))
    for user in USERS:
        statuses = [status for who, status, _ in results if who == user]
        assert statuses.count(200) == QUOTA, statuses
        assert statuses.count(429) == REQUESTS - QUOTA, statuses
        retry_after = [int(r) for who, s, r in results if who == user and s == 429 and r]
        assert len(retry_after) == REQUESTS - QUOTA
        assert all(0 < seconds <= 86_401 for seconds in retry_after)
    served = [r for r in upstreams.records(ProviderName.EXA) if r.key == PLATFORM_EXA]
    assert len(served) == QUOTA * len(USERS)
    with clean_engine.connect() as conn:
        counts = {r.user_id: r.requests for r in conn.execute(select(platform_quota_usage))}
    assert counts == dict.fromkeys(USERS, QUOTA)
