"""Keys read through the overlay are usage too: once per request and provider, with the origin
of the key read, and never twice for a request that also injected that provider's client."""

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from dependency_injector import providers as di
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine, select

from keyscope.app.deps import GeminiDep
from keyscope.app.keys.models import key_usage_daily
from keyscope.app.main import integrate
from keyscope.app.settings import Settings
from keyscope.app.testing import running
from keyscope.containers import Container

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("env_guard")]

Auth = Callable[[str], dict[str, str]]
PLATFORM_EXA = "platform-exa-for-legacy-usage"
ALICE_GEMINI = "gemini-alice-legacy-usage"


def _usage(engine: Engine) -> dict[tuple[str, str, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(select(key_usage_daily)).mappings().all()
    assert all(r["day"] == datetime.now(UTC).date() for r in rows)
    return {(r["user_id"], r["provider"], r["origin"]): r["requests"] for r in rows}


def _legacy_app(
    settings: Settings, clean_engine: Engine, **extra: str
) -> tuple[FastAPI, Container]:
    overlay_settings = settings.model_copy(
        update={
            "legacy_env": "overlay",
            "exa_api_key": SecretStr(PLATFORM_EXA),
            "platform_fallback": "exa",
            "usage_flush_interval": 3600.0,  # flushed by the test, so counts are exact
            **extra,
        }
    )
    container = Container(settings=di.Object(overlay_settings), engine=di.Object(clean_engine))
    app = FastAPI()

    @app.get("/old/both")
    def read_twice() -> dict[str, bool]:
        """Legacy code reading two providers' keys, one of them twice, in a thread."""
        gemini = os.getenv("GEMINI_API_KEY")
        again = os.environ.get("GOOGLE_API_KEY")
        exa = os.getenv("EXA_API_KEY")
        return {"gemini": gemini is not None and gemini == again, "exa": exa == PLATFORM_EXA}

    @app.get("/old/nothing")
    async def reads_nothing() -> dict[str, str | None]:
        return {"home": os.getenv("HOME")}

    @app.get("/mixed")
    async def mixed(gemini: GeminiDep) -> dict[str, bool]:
        """An injected client and a legacy read of the same provider: one use."""
        return {"read": os.getenv("GEMINI_API_KEY") == ALICE_GEMINI, "client": bool(gemini)}

    integrate(app, container, provider_routes=True)
    return app, container


async def test_overlay_reads_count_once_per_request_and_provider(
    settings: Settings, clean_engine: Engine, auth: Auth
) -> None:
    app, container = _legacy_app(settings, clean_engine)
    async with running(app) as started:
        transport = httpx.ASGITransport(app=started)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            stored = await client.put(
                "/v1/keys/gemini?validate=false",
                json={"api_key": ALICE_GEMINI},
                headers=auth("alice"),
            )
            assert stored.status_code == 200, stored.text
            for _ in range(3):
                answer = await client.get("/old/both", headers=auth("alice"))
                assert answer.json() == {"gemini": True, "exa": True}
            for _ in range(2):  # the shipped legacy service (genai.Client from os.getenv)
                answer = await client.post(
                    "/v1/legacy/gemini/generate", json={"prompt": "hi"}, headers=auth("alice")
                )
                assert answer.status_code == 200, answer.text
            answer = await client.get("/mixed", headers=auth("alice"))
            assert answer.json() == {"read": True, "client": True}
            assert (await client.get("/old/nothing", headers=auth("alice"))).status_code == 200
            assert (await client.get("/v1/keys", headers=auth("alice"))).status_code == 200
            # A user without any key: the Gemini read finds nothing, Exa is the platform's.
            answer = await client.get("/old/both", headers=auth("bo"))
            assert answer.json() == {"gemini": False, "exa": True}
        await asyncio.to_thread(container.usage().flush)
        assert _usage(clean_engine) == {
            ("alice", "gemini", "user"): 3 + 2 + 1,
            ("alice", "exa", "platform"): 3,
            ("bo", "exa", "platform"): 1,
        }


async def test_overlay_never_hands_out_a_platform_key_the_quota_rations(
    settings: Settings, clean_engine: Engine, auth: Auth
) -> None:
    """Under KEYSCOPE_PLATFORM_QUOTA the overlay cannot take a unit (os.getenv cannot wait for
    the database), so legacy code sees no platform key for that provider, however much quota
    is left; a user's own key is read as usual, and nothing unserved is counted."""
    app, container = _legacy_app(settings, clean_engine, platform_quota="exa:1000")
    async with running(app) as started:
        transport = httpx.ASGITransport(app=started)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/old/both", headers=auth("bo"))
            assert answer.json() == {"gemini": False, "exa": False}
            stored = await client.put(
                "/v1/keys/exa?validate=false",
                json={"api_key": PLATFORM_EXA},  # the same string, but the user's own row
                headers=auth("bo"),
            )
            assert stored.status_code == 200, stored.text
            answer = await client.get("/old/both", headers=auth("bo"))
            assert answer.json() == {"gemini": False, "exa": True}
        await asyncio.to_thread(container.usage().flush)
        assert _usage(clean_engine) == {("bo", "exa", "user"): 1}
