"""An integrated app mounted inside another (`host.mount("/ai", sub)`): Starlette runs only the
host's lifespan, so keyscope's start-up and shut-down never run for `sub` (usage is never
written, pools never closed, the PostgreSQL listener never started, the overlay never
installed). Such an app refuses every request with a problem naming the fix, until keyscope's
lifespan runs for its container; chaining `keyscope_lifespan` into the host's makes it work."""

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from dependency_injector import providers as di
from fastapi import FastAPI
from sqlalchemy import Engine, select

from keyscope.app.keys.models import key_usage_daily
from keyscope.app.main import integrate, keyscope_lifespan
from keyscope.app.settings import Settings
from keyscope.app.testing import running
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
OPERATOR_KEY = "operator-gemini-key-never-served"


def _sub(container: Container) -> FastAPI:
    sub = FastAPI()

    @sub.get("/legacy")
    def legacy() -> dict[str, bool]:
        return {"has_key": os.getenv("GEMINI_API_KEY") is not None}

    integrate(sub, container, provider_routes=True)
    return sub


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as started:
        transport = httpx.ASGITransport(app=started)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def _usage_rows(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(key_usage_daily)).mappings().all()
    return [(r["user_id"], r["provider"], r["requests"]) for r in rows]


async def test_mounted_without_its_lifespan_refuses_and_names_the_fix(
    container: Container, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Every request to the mounted app is a 503 problem naming both fixes; nothing reaches an
    upstream; the host's own routes still answer."""
    host = FastAPI()

    @host.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ping": "pong"}

    host.mount("/ai", _sub(container))
    async with _client(host) as client:
        assert (await client.get("/ping")).json() == {"ping": "pong"}
        for method, path in (("POST", "/ai/v1/gemini/generate"), ("GET", "/ai/v1/keys")):
            answer = await client.request(method, path, json={"prompt": "x"}, headers=auth("al"))
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            body = answer.json()
            assert body["type"].endswith("/keyscope-not-started")
            assert "integrate(" in body["detail"]
            assert "keyscope_lifespan" in body["detail"]
    assert upstreams.records() == []


async def test_mounted_with_the_overlay_never_serves_the_operators_key(
    settings: Settings, clean_engine: Engine, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With KEYSCOPE_LEGACY_ENV=overlay the mounted app's legacy route never runs."""
    monkeypatch.setenv("GEMINI_API_KEY", OPERATOR_KEY)
    overlay = settings.model_copy(update={"legacy_env": "overlay"})
    container = Container(settings=di.Object(overlay), engine=di.Object(clean_engine))
    host = FastAPI()
    host.mount("/ai", _sub(container))
    async with _client(host) as client:
        answer = await client.get("/ai/legacy", headers=auth("al"))
    assert answer.status_code == 503
    assert OPERATOR_KEY not in answer.text


async def test_chaining_keyscope_lifespan_into_the_host_makes_it_work(
    container: Container, auth: Auth, clean_engine: Engine, upstreams: FakeUpstreams
) -> None:
    """The documented fix: the host's lifespan enters keyscope's for the sub-app's container.
    Requests are served and the usage they made is written at shut-down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with keyscope_lifespan(container):
            yield

    host = FastAPI(lifespan=lifespan)
    host.mount("/ai", _sub(container))
    async with _client(host) as client:
        stored = await client.put(
            "/ai/v1/keys/gemini?validate=false",
            json={"api_key": "k-al-mounted"},
            headers=auth("al"),
        )
        assert stored.status_code == 200, stored.text
        answer = await client.post(
            "/ai/v1/gemini/generate", json={"prompt": "x"}, headers=auth("al")
        )
        assert answer.status_code == 200, answer.text
        await client.put(
            "/ai/v1/keys/copilotkit?validate=false",
            json={"api_key": "ck_pub_al-mounted"},
            headers=auth("al"),
        )
        config = await client.get("/ai/v1/copilotkit/config", headers=auth("al"))
        # The frontend is sent where the runtime proxy is served: under the mount point.
        assert config.json()["runtime_url"] == "/ai/v1/copilotkit/runtime", config.text
    assert [r.key for r in upstreams.records()] == ["k-al-mounted"]
    assert sorted(await asyncio.to_thread(_usage_rows, clean_engine)) == [
        ("al", "copilotkit", 1),
        ("al", "gemini", 1),
    ]
    assert container.http().is_closed


async def test_entering_the_sub_apps_own_lifespan_works_too(
    container: Container, auth: Auth
) -> None:
    """`sub.router.lifespan_context(sub)` in the host's lifespan: the sub-app's own lifespan
    runs, keyscope's around it."""
    events: list[str] = []

    @asynccontextmanager
    async def sub_lifespan(_: FastAPI) -> AsyncIterator[None]:
        events.append("sub started")
        yield

    sub = FastAPI(lifespan=sub_lifespan)
    integrate(sub, container)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with sub.router.lifespan_context(sub):
            yield

    host = FastAPI(lifespan=lifespan)
    host.mount("/ai", sub)
    async with _client(host) as client:
        listing = await client.get("/ai/v1/keys", headers=auth("al"))
    assert listing.status_code == 200, listing.text
    assert events == ["sub started"]
