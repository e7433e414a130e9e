"""Provider routes: the caller's own key reaches the upstream; errors become clear problems."""

from collections.abc import Callable

import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy import Engine

from keyscope.app.clients import KEY_ORIGIN_HEADER
from keyscope.app.main import create_app
from keyscope.app.testing import app_client
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from tests.support.settings import make_settings, upstream_urls

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


async def _store(client: httpx.AsyncClient, auth: Auth, user: str, provider: str, key: str) -> None:
    # Unchecked on save: these tests store keys the fakes reject, and count upstream calls.
    response = await client.put(
        f"/v1/keys/{provider}?validate=false", json={"api_key": key}, headers=auth(user)
    )
    assert response.status_code == 200, response.text


async def test_gemini_generate_uses_the_callers_key(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Alice's and Bob's prompts each reach Gemini with their own key, in the header."""
    await _store(client, auth, "alice", "gemini", "gemini-alice-0123456789")
    await _store(client, auth, "bob", "gemini", "gemini-bob-0123456789")
    for user in ("alice", "bob"):
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": f"hello from {user}"}, headers=auth(user)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"text": f"echo: hello from {user}", "model": "gemini-2.5-flash"}
        assert response.headers[KEY_ORIGIN_HEADER] == "user"
    seen = [
        (r.key, r.json()["contents"][0]["parts"][0]["text"])
        for r in upstreams.records(ProviderName.GEMINI)
    ]
    assert seen == [
        ("gemini-alice-0123456789", "hello from alice"),
        ("gemini-bob-0123456789", "hello from bob"),
    ]
    for record in upstreams.records():
        assert "key=" not in record.path


async def test_exa_search_uses_the_callers_key(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Exa receives the caller's key in x-api-key and numResults from num_results."""
    await _store(client, auth, "alice", "exa", "exa-alice-0123456789")
    response = await client.post(
        "/v1/exa/search", json={"query": "keyscope", "num_results": 3}, headers=auth("alice")
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    assert set(results[0]) == {"title", "url"}
    (record,) = upstreams.records(ProviderName.EXA)
    assert record.key == "exa-alice-0123456789"
    assert record.json() == {"query": "keyscope", "numResults": 3}


async def test_copilotkit_config_and_streaming_runtime(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """The config returns the publishable key; the runtime relays Copilot Cloud's events.

    (httpx's ASGI transport buffers bodies: chunk-by-chunk delivery is checked through a real
    uvicorn server in tests/concurrency.)"""
    await _store(client, auth, "alice", "copilotkit", "ck_pub_alice_0123456789")
    config = await client.get("/v1/copilotkit/config", headers=auth("alice"))
    assert config.status_code == 200
    assert config.json()["public_api_key"] == "ck_pub_alice_0123456789"
    response = await client.post(
        "/v1/copilotkit/runtime", json={"operationName": "x"}, headers=auth("alice")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.count("data: ") == 5
    (record,) = upstreams.records(ProviderName.COPILOTKIT)
    assert record.key == "ck_pub_alice_0123456789"


@pytest.mark.parametrize(
    ("method", "path", "body", "provider"),
    [
        ("POST", "/v1/gemini/generate", {"prompt": "hi"}, "gemini"),
        ("POST", "/v1/exa/search", {"query": "hi"}, "exa"),
        ("GET", "/v1/copilotkit/config", None, "copilotkit"),
        ("POST", "/v1/copilotkit/runtime", {"q": 1}, "copilotkit"),
    ],
)
async def test_missing_key_is_409_and_nothing_goes_upstream(
    client: httpx.AsyncClient,
    auth: Auth,
    upstreams: FakeUpstreams,
    method: str,
    path: str,
    body: object,
    provider: str,
) -> None:
    """Without a stored key (production, no fallback) the caller is told to store one."""
    response = await client.request(method, path, json=body, headers=auth("keyless"))
    assert response.status_code == 409
    assert f"PUT /v1/keys/{provider}" in response.json()["detail"]
    assert upstreams.records() == []


@pytest.mark.parametrize(
    ("key", "status", "slug"),
    [
        ("reject-0123456789", 422, "provider-keyrejected"),
        ("forbidden-0123456789", 422, "provider-keyrejected"),
        ("ratelimit-0123456789", 429, "provider-ratelimited"),
        ("boom-0123456789", 502, "provider-unavailable"),
        ("garbage-0123456789", 502, "provider-unavailable"),
    ],
)
@pytest.mark.parametrize("provider", ["gemini", "exa"])
async def test_upstream_errors_are_translated(
    client: httpx.AsyncClient, auth: Auth, provider: str, key: str, status: int, slug: str
) -> None:
    """Vendor failures become problems naming the provider; the key never appears."""
    await _store(client, auth, "alice", provider, key)
    path, body = {
        "gemini": ("/v1/gemini/generate", {"prompt": "hi"}),
        "exa": ("/v1/exa/search", {"query": "hi"}),
    }[provider]
    response = await client.post(path, json=body, headers=auth("alice"))
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["type"].endswith(slug)
    assert problem["provider"] == provider
    assert key not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"


async def test_unknown_model_is_400(client: httpx.AsyncClient, auth: Auth) -> None:
    """A model Gemini does not know is the caller's 400, not a 500."""
    await _store(client, auth, "alice", "gemini", "gemini-alice-0123456789")
    response = await client.post(
        "/v1/gemini/generate",
        json={"prompt": "hi", "model": "missing-model"},
        headers=auth("alice"),
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/gemini/generate", {"prompt": ""}),
        ("/v1/gemini/generate", {"prompt": "hi", "model": "../../etc"}),
        ("/v1/gemini/generate", {"prompt": 3}),
        ("/v1/exa/search", {"query": "hi", "num_results": 0}),
        ("/v1/exa/search", {"query": "hi", "num_results": "many"}),
    ],
)
async def test_bad_provider_requests_are_422(
    client: httpx.AsyncClient, auth: Auth, path: str, body: object
) -> None:
    """Malformed route bodies are 422 problems (for a caller who has keys: a keyless caller
    learns about the missing key first, as dependencies resolve before the body)."""
    for provider in ("gemini", "exa"):
        await _store(client, auth, "alice", provider, f"{provider}-alice-0123456789")
    response = await client.post(path, json=body, headers=auth("alice"))
    assert response.status_code == 422


async def test_upstream_timeout_is_504(
    clean_engine: Engine, database_url: str, upstreams: FakeUpstreams, auth: Auth
) -> None:
    """An upstream slower than the configured timeout is a 504 problem."""
    settings = make_settings(database_url, upstream_timeout=0.5, **upstream_urls(upstreams))
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    async with app_client(app, "http://t") as client:
        await _store(client, auth, "alice", "exa", "slow-0123456789")
        response = await client.post("/v1/exa/search", json={"query": "hi"}, headers=auth("alice"))
    assert response.status_code == 504
    assert response.json()["provider"] == "exa"


async def test_unreachable_upstream_is_502(
    clean_engine: Engine, database_url: str, auth: Auth
) -> None:
    """A closed port upstream is a 502 problem."""
    settings = make_settings(database_url, exa_base_url="http://127.0.0.1:9")
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    async with app_client(app, "http://t") as client:
        await _store(client, auth, "alice", "exa", "exa-alice-0123456789")
        response = await client.post("/v1/exa/search", json={"query": "hi"}, headers=auth("alice"))
    assert response.status_code == 502


async def test_any_route_that_injects_clients_says_whose_keys_served_it(
    container: Container, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """An app's own route gets X-Keyscope-Key-Origin too; two providers are named each."""
    from tests.probe_routes import router as probe_router

    app = create_app(container)
    app.include_router(probe_router)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://keyscope.test"
        ) as client,
    ):
        await _store(client, auth, "dana", "gemini", "gemini-dana-0123456789")
        await _store(client, auth, "dana", "exa", "exa-dana-0123456789")
        response = await client.post("/probe/both/n1", headers=auth("dana"))
        assert response.status_code == 200, response.text
        assert response.headers[KEY_ORIGIN_HEADER] == "exa=user, gemini=user"
        listing = await client.get("/v1/keys", headers=auth("dana"))
        assert KEY_ORIGIN_HEADER.lower() not in listing.headers  # no client, no key used
