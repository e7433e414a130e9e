"""The project served by a real uvicorn process with the overlay on and an operator key in its
environment: 20 users x 10 requests, interleaved over every endpoint style, each user's own key
upstream, never another's, never the operator's."""

import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keyscope.app.security.tokens import mint_token
from keyscope.app.testing import FakeUpstreams
from keyscope.providers import ProviderName

pytestmark = pytest.mark.anyio

USERS = 20
REQUESTS_PER_USER = 10
PATHS = ["/annotated/ask", "/wired/ask", "/wired/ask-sync", "/legacy/ask", "/legacy/ask-env"]
OPERATOR_KEY = "operator-gemini-key-in-the-server-env"
PROJECT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(
    keyscope_database_url: str, keyscope_upstreams: FakeUpstreams, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """(base URL, JWT secret) of the project under uvicorn, stopped afterwards."""
    jwt_secret = secrets.token_urlsafe(48)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSCOPE_")}
    env.update(
        KEYSCOPE_DEPLOY_ENV="production",
        KEYSCOPE_DATABASE_URL=keyscope_database_url,
        KEYSCOPE_MASTER_KEYS="k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        KEYSCOPE_JWT_SECRET=jwt_secret,
        KEYSCOPE_LEGACY_ENV="overlay",
        KEYSCOPE_GEMINI_BASE_URL=keyscope_upstreams.gemini_base_url,
        KEYSCOPE_STATE_DIR=str(tmp_path / "state"),
        ADOPTER_GEMINI_BASE_URL=keyscope_upstreams.gemini_base_url,
        GEMINI_API_KEY=OPERATOR_KEY,
        GOOGLE_API_KEY=OPERATOR_KEY,
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,  # not the project: nothing may depend on, or be written to, the cwd
        env={**env, "PYTHONPATH": str(PROJECT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                pytest.fail(process.stdout.read() if process.stdout else "server exited")
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        yield base, jwt_secret
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert OPERATOR_KEY not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"] or not any(
        p.name != "state" for p in tmp_path.iterdir()
    )


async def test_twenty_users_ten_requests_each(
    server: tuple[str, str], keyscope_upstreams: FakeUpstreams
) -> None:
    """200 interleaved requests: 0 wrong keys, 0 operator keys, every one answered 200."""
    base, jwt_secret = server
    users = [f"user-{n:02d}" for n in range(USERS)]
    headers = {u: {"Authorization": f"Bearer {mint_token(jwt_secret, u)}"} for u in users}
    key_of = {u: f"gemini-key-of-{u}-{secrets.token_hex(4)}" for u in users}
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for user in users:
            stored = await client.put(
                "/v1/keys/gemini", json={"api_key": key_of[user]}, headers=headers[user]
            )
            assert stored.status_code == 200, stored.text
        keyscope_upstreams.clear()
        plan = [
            (user, round_, PATHS[(round_ + n) % len(PATHS)])
            for round_ in range(REQUESTS_PER_USER)
            for n, user in enumerate(users)
        ]

        async def one(user: str, round_: int, path: str) -> tuple[int, str, str]:
            prompt = f"{user}|{round_}"
            response = await client.post(path, params={"prompt": prompt}, headers=headers[user])
            return response.status_code, user, response.text

        started = time.monotonic()
        results = await asyncio.gather(*(one(*step) for step in plan))
        elapsed = time.monotonic() - started
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: USERS * REQUESTS_PER_USER}, [r for r in results if r[0] != 200][:3]
    for _, user, body in results:
        assert json.loads(body)["user"] == user

    records = keyscope_upstreams.records(ProviderName.GEMINI)
    assert len(records) == USERS * REQUESTS_PER_USER
    wrong = operator = 0
    for record in records:
        prompt = record.json()["contents"][0]["parts"][0]["text"]
        owner = prompt.split("|")[0]
        operator += record.key == OPERATOR_KEY
        wrong += record.key != key_of[owner]
    print(f"{len(records)} upstream calls in {elapsed:.2f}s: {wrong} wrong, {operator} operator")
    assert (wrong, operator) == (0, 0)
