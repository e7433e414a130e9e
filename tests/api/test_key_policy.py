"""Key policy: the user's own key wins; the platform key only where policy allows it."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from dependency_injector import providers as di
from pydantic import SecretStr
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
OPERATOR_GEMINI = "operator-gemini-key-0123456789"
OPERATOR_EXA = "operator-exa-key-0123456789"


@pytest.fixture
def client_with(
    clean_engine: Engine, database_url: str, upstreams: FakeUpstreams
) -> Callable[..., Any]:
    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        upstreams.clear()
        settings = make_settings(
            database_url,
            gemini_api_key=SecretStr(OPERATOR_GEMINI),
            exa_api_key=SecretStr(OPERATOR_EXA),
            **upstream_urls(upstreams),
            **overrides,
        )
        app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
        async with app_client(app, "http://t") as client:  # lifespan entered, as served
            yield client

    return build


async def test_production_never_uses_the_operator_key_by_default(
    client_with: Callable[..., Any], auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Production, no KEYSCOPE_PLATFORM_FALLBACK: a keyless user gets 409, upstream sees nothing."""
    async with client_with() as client:
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": "hi"}, headers=auth("u")
        )
    assert response.status_code == 409
    assert upstreams.records() == []


async def test_fallback_is_per_provider_and_recorded(
    client_with: Callable[..., Any],
    auth: Auth,
    upstreams: FakeUpstreams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fallback for gemini only: gemini uses the operator key (header says so), exa stays 409."""
    caplog.set_level(logging.INFO)
    async with client_with(platform_fallback="gemini") as client:
        gemini = await client.post("/v1/gemini/generate", json={"prompt": "hi"}, headers=auth("u"))
        exa = await client.post("/v1/exa/search", json={"query": "hi"}, headers=auth("u"))
    assert gemini.status_code == 200
    assert gemini.headers[KEY_ORIGIN_HEADER] == "platform"
    assert exa.status_code == 409
    assert [r.key for r in upstreams.records()] == [OPERATOR_GEMINI]
    assert "platform key used user=u provider=gemini" in caplog.text
    assert OPERATOR_GEMINI not in caplog.text


async def test_user_key_wins_over_fallback(
    client_with: Callable[..., Any], auth: Auth, upstreams: FakeUpstreams
) -> None:
    """With fallback allowed, a user who stored a key still uses their own."""
    async with client_with(platform_fallback="gemini") as client:
        await client.put(
            "/v1/keys/gemini", json={"api_key": "mine-0123456789abc"}, headers=auth("u")
        )
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": "hi"}, headers=auth("u")
        )
    assert response.headers[KEY_ORIGIN_HEADER] == "user"
    assert [r.key for r in upstreams.records()] == ["mine-0123456789abc"]


async def test_local_mode_falls_back_to_process_keys(
    client_with: Callable[..., Any], auth: Auth, upstreams: FakeUpstreams
) -> None:
    """DEPLOY_ENV=local serves keyless users with the process's own keys (the seed's local mode)."""
    async with client_with(deploy_env="local") as client:
        response = await client.post("/v1/exa/search", json={"query": "hi"}, headers=auth("u"))
    assert response.status_code == 200
    assert response.headers[KEY_ORIGIN_HEADER] == "platform"
    assert [r.key for r in upstreams.records(ProviderName.EXA)] == [OPERATOR_EXA]


async def test_decrypt_failure_never_falls_back(
    client_with: Callable[..., Any], auth: Auth, upstreams: FakeUpstreams, clean_engine: Engine
) -> None:
    """A stored key that fails to decrypt is a 409 problem even where fallback is allowed."""
    from sqlalchemy import update

    from keyscope.app.keys.models import provider_keys

    async with client_with(platform_fallback="gemini") as client:
        await client.put(
            "/v1/keys/gemini", json={"api_key": "mine-0123456789abc"}, headers=auth("u")
        )
        with clean_engine.begin() as conn:
            conn.execute(update(provider_keys).values(key_id="gone"))
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": "hi"}, headers=auth("other")
        )
        assert response.headers[KEY_ORIGIN_HEADER] == "platform"  # a keyless user: fallback
        upstreams.clear()
        # Bypass the record cache the PUT left warm for "u": a new app reads the tampered row.
    async with client_with(platform_fallback="gemini") as client:
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": "hi"}, headers=auth("u")
        )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/key-unreadable")
    assert "'gone'" in response.json()["detail"]
    assert upstreams.records() == []
