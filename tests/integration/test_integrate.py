"""integrate(app): routers and prefix, lifespan chaining, one call per app, sub-apps."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from keyscope.app.deps import GeminiDep
from keyscope.app.main import AlreadyIntegrated, create_app, integrate
from keyscope.app.testing import app_client
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


async def test_defaults_mount_only_the_keys_api(container: Container, auth: Auth) -> None:
    """With no options: /v1/keys is served, health and provider routes are not, the container
    is returned and kept where the seam finds it."""
    app = FastAPI(title="host")
    returned = integrate(app, container)
    assert returned is container
    assert app.state.container is container
    async with app_client(app) as client:
        assert (await client.get("/v1/keys", headers=auth("alice"))).json() == {"keys": []}
        assert (await client.get("/healthz")).status_code == 404
        assert (await client.post("/v1/gemini/generate", json={"prompt": "x"})).status_code == 404
    assert app.title == "host"


async def test_prefix_and_optional_routers(container: Container, auth: Auth) -> None:
    """prefix= moves every keyscope route; health_routes/provider_routes add them."""
    app = FastAPI()
    integrate(app, container, prefix="/ks", health_routes=True, provider_routes=True)
    async with app_client(app) as client:
        assert (await client.get("/ks/v1/keys", headers=auth("alice"))).status_code == 200
        assert (await client.get("/ks/healthz")).status_code == 200
        assert (await client.get("/v1/keys", headers=auth("alice"))).status_code == 404
        answer = await client.post(
            "/ks/v1/gemini/generate", json={"prompt": "x"}, headers=auth("alice")
        )
        assert answer.status_code == 409  # no key stored: keyscope's own problem
        assert answer.headers["content-type"] == "application/problem+json"


async def test_twice_on_one_app_is_an_error(container: Container) -> None:
    """A second integrate() on the same app raises instead of stacking middleware twice."""
    app = FastAPI()
    integrate(app, container)
    with pytest.raises(AlreadyIntegrated):
        integrate(app, container)


async def test_host_lifespan_is_chained_not_replaced(container: Container) -> None:
    """The host's lifespan runs inside keyscope's, its state reaches requests, both shut down."""
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("host start")
        yield {"greeting": "hello"}
        events.append(f"host stop, pools closed: {container.http().is_closed}")

    app = FastAPI(lifespan=lifespan)

    @app.get("/greeting")
    async def greeting(request: Request) -> dict[str, str]:
        return {"greeting": request.state.greeting}

    integrate(app, container)
    async with app_client(app) as client:
        assert events == ["host start"]
        assert (await client.get("/greeting")).json() == {"greeting": "hello"}
    assert events == ["host start", "host stop, pools closed: False"]
    assert container.http().is_closed  # keyscope's shut-down ran, after the host's


async def test_on_startup_handlers_still_run(container: Container) -> None:
    """An app configured with on_startup/on_shutdown handlers keeps them."""
    events: list[str] = []
    app = FastAPI(
        on_startup=[lambda: events.append("start")], on_shutdown=[lambda: events.append("stop")]
    )
    integrate(app, container)
    async with app_client(app):
        assert events == ["start"]
    assert events == ["start", "stop"]


async def test_create_app_takes_fastapi_options(container: Container) -> None:
    """create_app passes title, docs_url and lifespan to FastAPI, and still mounts everything."""
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        started.append(True)
        yield

    app = create_app(container, title="my service", docs_url=None, lifespan=lifespan)
    assert app.title == "my service"
    async with app_client(app) as client:
        assert started == [True]
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200


async def test_routes_of_a_mounted_sub_app_find_the_container(
    container: Container, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """A sub-app mounted inside the integrated app resolves keyscope's aliases through the
    request scope (its own app.state has no container)."""
    app = FastAPI()
    integrate(app, container)
    sub = FastAPI()

    @sub.post("/ask")
    async def ask(gemini: GeminiDep) -> dict[str, str]:
        return {"text": (await gemini.generate("hi", "gemini-2.5-flash")).text}

    app.mount("/sub", sub)
    async with app_client(app) as client:
        stored = await client.put(  # unchecked on save: the test counts upstream calls
            "/v1/keys/gemini?validate=false", json={"api_key": "sub-app-key"}, headers=auth("alice")
        )
        assert stored.status_code == 200
        answer = await client.post("/sub/ask", headers=auth("alice"))
        assert answer.status_code == 200, answer.text
    assert [r.key for r in upstreams.records()] == ["sub-app-key"]


async def test_testing_kit_app_client_is_a_real_client(app: FastAPI) -> None:
    """app_client() drives the app in process over HTTP semantics (sanity for the kit)."""
    async with app_client(app) as client:
        assert isinstance(client, httpx.AsyncClient)
        assert (await client.get("/healthz")).status_code == 200
