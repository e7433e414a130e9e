"""dependency-injector's own wiring (`@inject` + `Depends(Provide[Container.x])`) for every
request-scoped value and client, in `async def` and `def` endpoints, cold cache, warm cache,
and with the key cache off: each request 200 with its own user's key upstream."""

from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import pytest
from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, FastAPI

from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.main import integrate
from keyscope.app.security.tokens import Principal
from keyscope.app.settings import Settings
from keyscope.app.testing import app_client, make_test_container, token_for
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.gemini import GeminiClient

pytestmark = pytest.mark.anyio

router = APIRouter()
MODEL = "gemini-2.5-flash"


@router.get("/async/principal")
@inject
async def async_principal(
    principal: Principal = Depends(Provide[Container.principal]),
) -> dict[str, str]:
    return {"sub": principal.subject}


@router.get("/def/principal")
@inject
def def_principal(principal: Principal = Depends(Provide[Container.principal])) -> dict[str, str]:
    return {"sub": principal.subject}


@router.get("/async/user_keys")
@inject
async def async_user_keys(keys: UserKeys = Depends(Provide[Container.user_keys])) -> dict[str, Any]:
    return {"gemini": keys.secret_for(ProviderName.GEMINI)}


@router.get("/def/user_keys")
@inject
def def_user_keys(keys: UserKeys = Depends(Provide[Container.user_keys])) -> dict[str, Any]:
    return {"gemini": keys.secret_for(ProviderName.GEMINI)}


@router.get("/async/gemini")
@inject
async def async_gemini(
    gemini: GeminiClient = Depends(Provide[Container.gemini_client]),
) -> dict[str, str]:
    return {"text": (await gemini.generate("hi", MODEL)).text}


@router.get("/def/gemini")
@inject
def def_gemini(gemini: GeminiClient = Depends(Provide[Container.gemini_client])) -> dict[str, str]:
    return {"text": anyio.from_thread.run(gemini.generate, "hi", MODEL).text}


@router.get("/async/exa")
@inject
async def async_exa(exa: ExaClient = Depends(Provide[Container.exa_client])) -> dict[str, int]:
    return {"results": len(await exa.search("q", 1))}


@router.get("/def/exa")
@inject
def def_exa(exa: ExaClient = Depends(Provide[Container.exa_client])) -> dict[str, int]:
    return {"results": len(anyio.from_thread.run(exa.search, "q", 1))}


@router.get("/async/copilotkit")
@inject
async def async_copilotkit(
    copilotkit: CopilotKitClient = Depends(Provide[Container.copilotkit_client]),
) -> dict[str, str]:
    return {"key": copilotkit.public_key}


@router.get("/def/copilotkit")
@inject
def def_copilotkit(
    copilotkit: CopilotKitClient = Depends(Provide[Container.copilotkit_client]),
) -> dict[str, str]:
    return {"key": copilotkit.public_key}


@router.get("/def/everything")
@inject
def def_everything(
    principal: Principal = Depends(Provide[Container.principal]),
    keys: UserKeys = Depends(Provide[Container.user_keys]),
    gemini: GeminiClient = Depends(Provide[Container.gemini_client]),
    exa: ExaClient = Depends(Provide[Container.exa_client]),
) -> dict[str, Any]:
    anyio.from_thread.run(gemini.generate, "hi", MODEL)
    anyio.from_thread.run(exa.search, "q", 1)
    return {"sub": principal.subject, "gemini": keys.secret_for(ProviderName.GEMINI)}


@pytest.fixture(params=[30.0, 0.0], ids=["cache", "ttl0"])
def wired(
    request: pytest.FixtureRequest, settings: Settings, upstreams: FakeUpstreams, clean_engine: Any
) -> Iterator[Container]:
    container = make_test_container(
        settings.database_url, upstreams=upstreams, key_cache_ttl=request.param
    )
    container.wire(modules=[__name__])
    yield container
    container.unwire()


ENDPOINTS = [
    f"/{style}/{what}"
    for style in ("async", "def")
    for what in ("principal", "user_keys", "gemini", "exa", "copilotkit")
] + ["/def/everything"]


def _upstream_key(upstreams: FakeUpstreams, path: str) -> list[str | None]:
    provider = {"gemini": ProviderName.GEMINI, "exa": ProviderName.EXA}.get(path.split("/")[-1])
    return [r.key for r in upstreams.records(provider)] if provider else []


async def test_provide_cold_and_warm(wired: Container, upstreams: FakeUpstreams) -> None:
    """Every endpoint, each for a fresh user (cold) and then again (warm): 200, own key."""
    app = FastAPI()
    app.include_router(router)
    integrate(app, wired)
    async with app_client(app) as client:
        for number, path in enumerate(ENDPOINTS):
            user = f"user-{number}"
            headers = {"Authorization": f"Bearer {token_for(wired, user)}"}
            key = f"key-of-{user}"
            for provider in ProviderName:
                stored = await client.put(  # unchecked: the test counts upstream calls
                    f"/v1/keys/{provider.value}?validate=false",
                    json={"api_key": f"{ck(provider)}{key}-{provider.value}"},
                    headers=headers,
                )
                assert stored.status_code == 200, stored.text
            for attempt in ("cold", "warm"):
                upstreams.clear()
                if attempt == "cold":
                    wired.record_cache().clear()
                response = await client.get(path, headers=headers)
                assert response.status_code == 200, (path, attempt, response.text)
                body = response.json()
                if "sub" in body:
                    assert body["sub"] == user
                if "gemini" in body:
                    assert body["gemini"] == f"{key}-gemini"
                if "key" in body:
                    assert body["key"] == f"ck_pub_{key}-copilotkit"
                if path.endswith("everything"):
                    seen = {r.key for r in upstreams.records()}
                    assert seen == {f"{key}-gemini", f"{key}-exa"}, (path, attempt)
                else:
                    seen_keys = _upstream_key(upstreams, path)
                    assert all(k and k.startswith(key) for k in seen_keys), (path, attempt)
                    if path.endswith(("gemini", "exa")):
                        assert seen_keys == [f"{key}-{path.split('/')[-1]}"], (path, attempt)


async def test_provide_outside_any_request_names_the_alternative(wired: Container) -> None:
    """Resolving a request-scoped value with no request at all raises at once, naming
    request_scope() (never a value from another request)."""
    from keyscope.app.errors import OutsideRequestScope

    with pytest.raises(OutsideRequestScope, match="request_scope"):
        wired.user_keys()


def ck(provider: ProviderName) -> str:
    """CopilotKit keys must be publishable (`ck_pub_…`)."""
    return "ck_pub_" if provider is ProviderName.COPILOTKIT else ""
