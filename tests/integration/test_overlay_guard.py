"""KEYSCOPE_LEGACY_ENV=overlay fails closed: without the overlay and its binding middleware
the app does not start (one line), and requests that arrive anyway are refused."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers as di
from fastapi import FastAPI

from keyscope.app.legacy import overlay
from keyscope.app.legacy.wiring.lifecycle import install_legacy_overlay, uninstall_legacy_overlay
from keyscope.app.main import integrate
from keyscope.app.problems import install_error_handlers
from keyscope.app.scope import RequestScopeMiddleware
from keyscope.app.settings import Settings
from keyscope.app.testing import LifespanFailed, running
from keyscope.containers import Container

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
OPERATOR_KEY = "operator-key-must-never-be-served"


@pytest.fixture
def overlay_container(settings: Settings, container: Container) -> Container:
    container.settings.override(di.Object(settings.model_copy(update={"legacy_env": "overlay"})))
    return container


def style_b(container: Container, lifespan: Callable[[FastAPI], object] | None = None) -> FastAPI:
    app = FastAPI(lifespan=lifespan) if lifespan else FastAPI()  # type: ignore[arg-type]
    app.add_middleware(RequestScopeMiddleware)
    install_error_handlers(app)
    app.state.container = container
    served: list[str | None] = []
    app.state.served = served

    @app.get("/legacy")
    def legacy() -> dict[str, bool]:
        served.append(os.getenv("GEMINI_API_KEY"))
        return {"has_key": served[-1] is not None}

    return app


async def test_hand_assembled_app_refuses_to_start(overlay_container: Container) -> None:
    """Style B with the toggle on: the ASGI start-up fails with one line naming the fix."""
    with pytest.raises(LifespanFailed) as failed:
        async with running(style_b(overlay_container)):
            pass
    message = str(failed.value)
    assert "\n" not in message
    assert "KEYSCOPE_LEGACY_ENV=overlay" in message
    assert "integrate(app)" in message


async def test_overlay_without_binding_middleware_refuses_to_start(
    overlay_container: Container,
) -> None:
    """An overlay installed by hand but no LegacyEnvMiddleware: start-up fails too."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_legacy_overlay(overlay_container)
        try:
            yield
        finally:
            uninstall_legacy_overlay()

    with pytest.raises(LifespanFailed, match="LegacyEnvMiddleware"):
        async with running(style_b(overlay_container, lifespan)):
            pass
    assert not overlay.is_installed()


async def test_requests_without_start_up_are_refused(
    overlay_container: Container, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lifespan at all (a server that skips it): every request is a 500 problem and the
    legacy code never runs, so the operator's GEMINI_API_KEY is never read."""
    monkeypatch.setenv("GEMINI_API_KEY", OPERATOR_KEY)
    app = style_b(overlay_container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(3):
            response = await client.get("/legacy", headers=auth("alice"))
            assert response.status_code == 500
            assert response.json()["type"].endswith("/legacy-overlay-inactive")
            assert OPERATOR_KEY not in response.text
    assert app.state.served == []


async def test_integrated_app_starts_and_serves_no_operator_key(
    overlay_container: Container, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same legacy route through integrate(): starts, and a keyless user reads nothing."""
    monkeypatch.setenv("GEMINI_API_KEY", OPERATOR_KEY)
    app = FastAPI()

    @app.get("/legacy")
    def legacy() -> dict[str, bool]:
        return {"has_key": os.getenv("GEMINI_API_KEY") is not None}

    integrate(app, overlay_container)
    async with running(app) as started:
        transport = httpx.ASGITransport(app=started)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/legacy", headers=auth("alice"))
    assert response.json() == {"has_key": False}
    assert os.environ.get("GEMINI_API_KEY") == OPERATOR_KEY  # put back at shut-down


@pytest.mark.slow
def test_uvicorn_exits_with_one_line(tmp_path: Path) -> None:
    """Served by uvicorn, the hand-assembled app exits at start-up and says why in one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSCOPE_")}
    env.update(
        KEYSCOPE_LEGACY_ENV="overlay",
        KEYSCOPE_STATE_DIR=str(tmp_path / "state"),
        GEMINI_API_KEY=OPERATOR_KEY,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.integration.style_b_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "KEYSCOPE_LEGACY_ENV=overlay" in line]
    assert len(lines) == 1, result.stderr
    assert "integrate(app)" in lines[0]
    assert OPERATOR_KEY not in result.stderr
