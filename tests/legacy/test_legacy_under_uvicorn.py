"""The legacy overlay end to end: unchanged `os.getenv` code behind a real uvicorn server.

30 users x 14 requests (each route twice) on the legacy routes (`def`, `async def`,
streaming, background task, `asyncio.to_thread`, the executor helpers): every Gemini call must
carry the requesting user's key, never the operator's, and nothing may remain in the process
environment afterwards. The same workload behind the seed's middleware shows the leak the
overlay fixes.
"""

import asyncio
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy import Engine

from keyscope.app.legacy import overlay
from keyscope.app.legacy.overlay.errors import ManagedNameOutsideRequest
from keyscope.app.legacy.wiring import gemini_service
from keyscope.app.legacy.wiring.router import router as legacy_router
from keyscope.app.live_server import live_server
from keyscope.app.main import create_app
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.gemini import gemini_http_options
from tests.legacy.probe_routes import router as probe_router
from tests.legacy.seed_http import SeedHttpMiddleware
from tests.support.load import CLIENT_TIMEOUT, gather_with_progress, wait_for_count
from tests.support.settings import make_settings, upstream_urls

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

OPERATOR_KEY = "operator-gemini-key-must-never-leak"
USERS = 30
KEYLESS = 5  # of them, without a stored key
PER_USER = 14  # each of the 7 routes twice
IN_FLIGHT = 20  # enough to interleave every user's requests; more only queues on 2 cores
ROUTES = {
    "def": "/v1/legacy/gemini/generate",
    "async": "/v1/legacy/gemini/generate-async",
    "stream": "/v1/legacy/gemini/stream",
    "background": "/probe-legacy/background",
    "to_thread": "/probe-legacy/to-thread",
    "executor": "/probe-legacy/executor",
    "run_in_executor": "/probe-legacy/run-in-executor",
}


async def _drive(
    base_url: str,
    users: list[str],
    keyless: set[str],
    per_user: int,
    make_token: Callable[..., str],
    kinds: list[str],
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Store keys, fire the shuffled plan IN_FLIGHT at a time; returns (keys, [(tag, body)])."""
    tokens = {u: make_token(u) for u in users}
    keys = {u: f"gemini-{u}-{random.getrandbits(48):012x}" for u in users if u not in keyless}
    plan = [(u, f"{u}|{i}", kinds[i % len(kinds)]) for u in users for i in range(per_user)]
    random.shuffle(plan)
    gate = asyncio.Semaphore(IN_FLIGHT)
    bodies: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as client:
        for user, key in keys.items():
            put = await client.put(
                "/v1/keys/gemini",
                json={"api_key": key},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            assert put.status_code == 200

        async def fire(user: str, tag: str, kind: str) -> None:
            async with gate:
                response = await client.post(
                    ROUTES[kind],
                    json={"prompt": tag},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
            expected = 409 if user in keyless and kind not in ("stream", "background") else 200
            assert response.status_code == expected, (kind, response.text[:200])
            bodies.append((tag, response.text))

        await gather_with_progress(fire(*item) for item in plan)
    return keys, bodies


async def test_overlay_serves_each_user_their_own_key(
    clean_engine: Engine,
    database_url: str,
    upstreams: FakeUpstreams,
    make_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """420 legacy requests: 0 wrong keys, 0 operator keys, nothing left in the environment."""
    upstreams.clear()
    monkeypatch.setenv("GEMINI_API_KEY", OPERATOR_KEY)
    environ_class = type(os.environ)
    settings = make_settings(
        database_url,
        legacy_env="overlay",
        legacy_outside_request="raise",
        **upstream_urls(upstreams),
    )
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    app.include_router(probe_router)
    users = [f"user-{i:02d}" for i in range(USERS)]
    keyless = set(users[:KEYLESS])
    expected = (USERS - KEYLESS) * PER_USER
    with live_server(app) as base_url:
        assert overlay.is_installed()
        with pytest.raises(ManagedNameOutsideRequest):  # strict mode, outside any request
            os.getenv("GEMINI_API_KEY")
        keys, _ = await _drive(base_url, users, keyless, PER_USER, make_token, list(ROUTES))
        # Background tasks finish after their responses: wait while their calls keep arriving.
        await wait_for_count(lambda: len(upstreams.records(ProviderName.GEMINI)), expected)
    records = upstreams.records(ProviderName.GEMINI)
    by_tag = Counter(_prompt(r.json()) for r in records)
    wrong = [r for r in records if r.key != keys.get(_prompt(r.json()).split("|")[0])]
    assert [r for r in records if r.key == OPERATOR_KEY] == []
    assert wrong == []
    assert all(tag.split("|")[0] not in keyless for tag in by_tag)
    assert len(by_tag) == expected
    assert set(by_tag.values()) == {1}
    # Toggle off: the stock class and the operator's value are back; no user key anywhere.
    assert not overlay.is_installed()
    assert type(os.environ) is environ_class
    assert os.environ["GEMINI_API_KEY"] == OPERATOR_KEY
    child_run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import os; print(sorted(os.environ.items()))"],
        capture_output=True,
        text=True,
        check=True,
    )
    child = child_run.stdout
    for key in keys.values():
        assert key not in child
        assert key not in repr(dict(os.environ))


async def test_seed_middleware_leaks_on_the_same_workload(
    clean_engine: Engine,
    database_url: str,
    upstreams: FakeUpstreams,
    make_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The baseline: the seed's os.environ middleware hands users each other's keys."""
    upstreams.clear()
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    settings = make_settings(database_url, **upstream_urls(upstreams))
    container = Container(settings=di.Object(settings), engine=di.Object(clean_engine))
    app = create_app(container)
    app.include_router(legacy_router)
    app.add_middleware(SeedHttpMiddleware, load_keys=container.user_keys)
    gemini_service.configure(gemini_http_options(settings.gemini_base_url, container.http()))
    users = [f"seed-{i:02d}" for i in range(20)]
    with live_server(app) as base_url:
        keys, bodies = await _drive_lenient(base_url, users, make_token)
    records = upstreams.records(ProviderName.GEMINI)
    wrong = [r for r in records if r.key != keys[_prompt(r.json()).split("|")[0]]]
    lost = [tag for tag, body in bodies if "error" in body or "not set" in body]
    print(
        f"\nseed design: {len(wrong)} of {len(records)} upstream calls carried another user's key; "
        f"{len(lost)} of {len(bodies)} requests found no key at all"
    )
    assert records, "the seed middleware set no key at all: the baseline did not run"
    assert len(wrong) + len(lost) > 0


async def _drive_lenient(
    base_url: str, users: list[str], make_token: Callable[..., str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    tokens = {u: make_token(u) for u in users}
    keys = {u: f"gemini-{u}-{random.getrandbits(48):012x}" for u in users}
    bodies: list[tuple[str, str]] = []
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as client:
        for user, key in keys.items():
            put = await client.put(
                "/v1/keys/gemini",
                json={"api_key": key},
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            assert put.status_code == 200, put.text

        async def fire(user: str, i: int) -> None:
            path = ROUTES["async"] if i % 2 else ROUTES["stream"]
            async with gate:
                response = await client.post(
                    path,
                    json={"prompt": f"{user}|{i}"},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
            bodies.append((f"{user}|{i}", response.text))

        await gather_with_progress(fire(u, i) for u in users for i in range(10))
    return keys, bodies


def _prompt(body: Any) -> str:
    return str(body["contents"][0]["parts"][0]["text"])
