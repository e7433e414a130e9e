"""Shared fixtures: settings, a migrated database per backend, the app, clients and tokens.

Every test that asks for `database_url` (directly or through `app`/`client`) runs once on
SQLite and once on PostgreSQL.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dependency_injector import providers as di
from fastapi import FastAPI
from sqlalchemy import Engine, delete

from keyscope.app.db import make_engine
from keyscope.app.keys.models import (
    key_events,
    key_usage_daily,
    platform_quota_usage,
    provider_keys,
)
from keyscope.app.main import create_app
from keyscope.app.security.tokens import mint_token
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams
from tests.support.databases import migrated_database
from tests.support.settings import JWT_SECRET, TokenFactory, make_settings, upstream_urls


@pytest.fixture
def anyio_backend() -> str:
    """Every async test runs on asyncio (some use asyncio.create_task / to_thread directly)."""
    return "asyncio"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with migrated_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_engine(engine: Engine) -> Iterator[Engine]:
    """The session's engine with an empty table before and after the test."""
    _empty(engine)
    yield engine
    _empty(engine)


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (provider_keys, key_events, key_usage_daily, platform_quota_usage):
            conn.execute(delete(table))


@pytest.fixture(scope="session")
def upstreams() -> Iterator[FakeUpstreams]:
    """Loopback Gemini, Exa and Copilot Cloud servers that record which key arrived."""
    fakes = FakeUpstreams(slow_seconds=3.0)
    yield fakes
    fakes.close()


@pytest.fixture
def settings(database_url: str, upstreams: FakeUpstreams) -> Settings:
    upstreams.clear()
    return make_settings(database_url, key_validation=True, **upstream_urls(upstreams))


@pytest.fixture
def container(settings: Settings, clean_engine: Engine) -> Container:
    return Container(settings=di.Object(settings), engine=di.Object(clean_engine))


@pytest.fixture
async def app(container: Container) -> AsyncIterator[FastAPI]:
    application = create_app(container)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keyscope.test") as c:
        yield c


@pytest.fixture
def make_token() -> TokenFactory:
    def make(sub: str, **kwargs: Any) -> str:
        return mint_token(JWT_SECRET, sub, **kwargs)

    return make


@pytest.fixture
def auth(make_token: TokenFactory) -> Callable[[str], dict[str, str]]:
    """Headers for user `sub`."""

    def headers(sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(sub)}"}

    return headers


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
