"""Upstream answers: no key fragment in any error, broken 200s are 502, CopilotKit publishable."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy import Engine

from keyscope.app.main import create_app
from keyscope.app.testing import app_client
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.http import MIN_FRAGMENT, redact
from tests.support.settings import make_settings, upstream_urls

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]

LEAK_KEYS = {
    "gemini": "leak-Gm7Qx2Lp9Vw4Rt8Yz3Kb6Nc1Hd5Jf0",
    "exa": "leak-Ex4Wq8Zr2Tm6Yp1Lk9Bv3Nc7Hd5Jf0",
    "copilotkit": "ck_pub_leak-Ck5Rv9Wq2Zm7Tp3Lx8Bn4Hd6Jf1",
}
CALLS = {
    "gemini": ("/v1/gemini/generate", {"prompt": "hi"}),
    "exa": ("/v1/exa/search", {"query": "hi"}),
    "copilotkit": ("/v1/copilotkit/runtime", {"messages": []}),
    "legacy": ("/v1/legacy/gemini/generate", {"prompt": "hi"}),
    "legacy-async": ("/v1/legacy/gemini/generate-async", {"prompt": "hi"}),
}


def fragments(key: str) -> list[str]:
    return [key[i : i + MIN_FRAGMENT] for i in range(len(key) - MIN_FRAGMENT + 1)]


@pytest.fixture
async def legacy_client(
    clean_engine: Engine, database_url: str, upstreams: FakeUpstreams
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the legacy overlay on (so the legacy route is mounted), lifespan entered."""
    upstreams.clear()
    settings = make_settings(database_url, legacy_env="overlay", **upstream_urls(upstreams))
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.mark.parametrize("route", list(CALLS))
async def test_echoed_key_fragments_never_reach_the_caller(
    legacy_client: httpx.AsyncClient, auth: Auth, route: str
) -> None:
    """An upstream error echoing the key whole, its tail, head and a middle slice: the problem
    detail holds no substring of the key of 6 characters or more, on every route."""
    provider = "gemini" if route.startswith("legacy") else route
    key = LEAK_KEYS[provider]
    stored = await legacy_client.put(
        f"/v1/keys/{provider}", json={"api_key": key}, headers=auth("alice")
    )
    assert stored.status_code == 200, stored.text
    path, body = CALLS[route]
    response = await legacy_client.post(path, json=body, headers=auth("alice"))
    assert response.status_code == 400, response.text
    assert "[redacted]" in response.json()["detail"]
    leaked = [f for f in fragments(key) if f.lower() in response.text.lower()]
    assert leaked == []


def test_redact_removes_every_long_fragment() -> None:
    """Whole key, tail, head, middle slice and a case-changed copy are all removed."""
    key = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    text = f"{key} | {key[-16:]} | {key[:8]} | {key[11:19]} | {key.upper()} | fine words"
    scrubbed = redact(text, key, limit=1000)
    assert scrubbed.endswith("| fine words")
    assert all(f.lower() not in scrubbed.lower() for f in fragments(key))
    assert redact("the key abc was refused", "abc") == ""  # too short to scrub: dropped


@pytest.mark.parametrize("shape", ["empty", "wrongshape", "garbage"])
async def test_gemini_malformed_200_is_502(
    client: httpx.AsyncClient, auth: Auth, shape: str
) -> None:
    """A Gemini 200 with an empty, wrong-shaped or non-JSON body is a 502 problem."""
    await client.put("/v1/keys/gemini", json={"api_key": f"{shape}-key-1"}, headers=auth("a"))
    response = await client.post("/v1/gemini/generate", json={"prompt": "x"}, headers=auth("a"))
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_copilotkit_put_accepts_only_publishable_keys(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """`sk-live-…` and a bare `ck_pub_` are 422 problems and are not stored."""
    for key in ("sk-live-0123456789abcdef", "ck_pub_", "CK_PUB_abc123"):
        response = await client.put(
            "/v1/keys/copilotkit", json={"api_key": key}, headers=auth("alice")
        )
        assert response.status_code == 422, key
        assert response.json()["type"].endswith("/invalid-key-format")
        assert response.json()["provider"] == "copilotkit"
    listed = await client.get("/v1/keys", headers=auth("alice"))
    assert listed.json() == {"keys": []}


async def test_copilotkit_config_never_returns_a_secret_key(
    clean_engine: Engine, database_url: str, upstreams: FakeUpstreams, auth: Auth
) -> None:
    """A non-publishable CopilotKit key (here the operator's platform key) is never returned
    by the config route: 409, and the value appears nowhere in the answer."""
    secret = "sk-live-operator-0123456789"
    settings = make_settings(
        database_url,
        copilotkit_api_key=secret,
        platform_fallback="copilotkit",
        **upstream_urls(upstreams),
    )
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    async with app_client(app, "http://t") as client:
        response = await client.get("/v1/copilotkit/config", headers=auth("alice"))
    assert response.status_code == 409, response.text
    assert secret not in response.text
