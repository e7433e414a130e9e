"""The project's fixtures, on keyscope's testing kit (its pytest plugin and helpers).

Every test runs on SQLite and on PostgreSQL (KEYSCOPE_TEST_POSTGRES_URL; with
KEYSCOPE_TEST_REQUIRE_POSTGRES=1 an unreachable server fails instead of skipping).
"""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from app.containers import AppContainer, build_container
from app.notes import notes
from fastapi import FastAPI
from sqlalchemy import delete

from app.main import create_app
from app.migrate import upgrade_all
from keyscope.app.testing import app_client, postgres_database, require_postgres
from keyscope.containers import Container

pytest_plugins = ["keyscope.app.pytest_plugin"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fresh_database(backend: str, directory: str) -> Iterator[str]:
    """An empty database (a SQLite file, or a PostgreSQL database dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/adopter.db"
        return
    with postgres_database(require_postgres(), prefix="adopter_test") as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def keyscope_database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Overrides the plugin's: one database per backend holding both histories."""
    for url in fresh_database(backend, str(tmp_path_factory.mktemp("db"))):
        upgrade_all(url)
        yield url


@pytest.fixture
def container(keyscope_container: Container) -> Iterator[AppContainer]:
    """The project's container around the per-test keyscope container; notes emptied."""
    app_container = build_container(keyscope_container)
    with keyscope_container.engine().begin() as conn:
        conn.execute(delete(notes))
    yield app_container
    app_container.unwire()


@pytest.fixture
def app(container: AppContainer) -> FastAPI:
    return create_app(container)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as c:
        yield c
