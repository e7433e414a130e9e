"""The project's endpoints, in process, through keyscope's testing kit."""

from collections.abc import Callable

import httpx
import pytest
from app.containers import build_container
from dependency_injector import providers

from app.main import create_app
from keyscope.app.testing import (
    FakeUpstreams,
    StaticUserKeys,
    app_client,
    auth_headers,
    keys_seen,
    make_test_container,
)
from keyscope.containers import Container
from keyscope.providers import ProviderName

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
OPERATOR_KEY = "operator-gemini-key-never-used"


async def _store(client: httpx.AsyncClient, headers: dict[str, str], key: str) -> None:
    stored = await client.put("/v1/keys/gemini", json={"api_key": key}, headers=headers)
    assert stored.status_code == 200, stored.text


@pytest.mark.parametrize("path", ["/annotated/ask", "/wired/ask", "/wired/ask-sync"])
async def test_injected_endpoints_use_the_callers_key(
    client: httpx.AsyncClient, keyscope_auth: Auth, keyscope_upstreams: FakeUpstreams, path: str
) -> None:
    """Annotated aliases and @inject/Provide (async and def): each user's own key upstream."""
    for user in ("alice", "bob"):
        await _store(client, keyscope_auth(user), f"key-{user}")
    for user in ("alice", "bob", "alice"):
        response = await client.post(path, params={"prompt": user}, headers=keyscope_auth(user))
        assert response.status_code == 200, response.text
        assert response.json() == {"user": user, "text": f"echo: {user}"}
    assert keys_seen(keyscope_upstreams, ProviderName.GEMINI) == [
        "key-alice",
        "key-bob",
        "key-alice",
    ]


async def test_project_table_lives_beside_keyscopes(
    client: httpx.AsyncClient, keyscope_auth: Auth
) -> None:
    """The project's own `notes` table (its own migration) is written through its container."""
    await _store(client, keyscope_auth("carol"), "key-carol")
    await client.post(
        "/wired/ask", params={"prompt": "remember me"}, headers=keyscope_auth("carol")
    )
    notes = await client.get("/notes", headers=keyscope_auth("carol"))
    assert notes.json() == {"notes": ["remember me"]}


async def test_missing_key_is_keyscopes_problem(
    client: httpx.AsyncClient, keyscope_auth: Auth
) -> None:
    """A user without a key gets keyscope's 409 problem on the project's own route."""
    response = await client.post(
        "/annotated/ask", params={"prompt": "x"}, headers=keyscope_auth("dan")
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


async def test_static_user_keys_override(
    keyscope_container: Container, keyscope_upstreams: FakeUpstreams, keyscope_auth: Auth
) -> None:
    """The kit's StaticUserKeys replaces the database: the fixed key goes upstream."""
    keyscope_container.user_keys.override(
        providers.Object(StaticUserKeys("erin", {ProviderName.GEMINI: "static-key"}))
    )
    async with app_client(create_app(build_container(keyscope_container))) as client:
        response = await client.post(
            "/wired/ask-sync", params={"prompt": "p"}, headers=keyscope_auth("erin")
        )
    assert response.status_code == 200, response.text
    assert keys_seen(keyscope_upstreams, ProviderName.GEMINI) == ["static-key"]


@pytest.mark.parametrize("path", ["/legacy/ask", "/legacy/ask-env"])
async def test_legacy_genai_code_behind_the_overlay(
    keyscope_database_url: str,
    keyscope_upstreams: FakeUpstreams,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    """Old genai.Client code (explicit os.getenv key, or the SDK's own env read) gets each
    user's key with the overlay on; a keyless user gets none, never the operator's."""
    monkeypatch.setenv("GEMINI_API_KEY", OPERATOR_KEY)
    monkeypatch.setenv("ADOPTER_GEMINI_BASE_URL", keyscope_upstreams.gemini_base_url)
    keyscope = make_test_container(
        keyscope_database_url, upstreams=keyscope_upstreams, legacy_env="overlay"
    )
    async with app_client(create_app(build_container(keyscope))) as client:
        for user in ("frank", "grace"):
            await _store(client, auth_headers(keyscope, user), f"legacy-{user}")
        for user in ("frank", "grace", "frank"):
            response = await client.post(
                path, params={"prompt": user}, headers=auth_headers(keyscope, user)
            )
            assert response.status_code == 200, response.text
            assert response.json()["text"] == f"echo: {user}"
        keyless = await client.post(
            path, params={"prompt": "x"}, headers=auth_headers(keyscope, "heidi")
        )
    assert keyless.status_code == 409, keyless.text
    assert keys_seen(keyscope_upstreams, ProviderName.GEMINI) == [
        "legacy-frank",
        "legacy-grace",
        "legacy-frank",
    ]
