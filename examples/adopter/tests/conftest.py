"""The project's fixtures, on keyscope's testing kit (its pytest plugin and helpers).

Every test runs on SQLite and on PostgreSQL (KEYSCOPE_TEST_POSTGRES_URL; with
KEYSCOPE_TEST_REQUIRE_POSTGRES=1 an unreachable server fails instead of skipping).
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from app.containers import AppContainer, build_container
from app.notes import notes
from fastapi import FastAPI
from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.main import create_app
from app.migrate import upgrade_all
from keyscope.app.testing import app_client
from keyscope.containers import Container

pytest_plugins = ["keyscope.app.pytest_plugin"]

POSTGRES_ADMIN_URL = os.environ.get(
    "KEYSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    admin = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        if os.environ.get("KEYSCOPE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"KEYSCOPE_TEST_REQUIRE_POSTGRES=1 but PostgreSQL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    finally:
        admin.dispose()
    return POSTGRES_ADMIN_URL


def fresh_database(backend: str, directory: str, admin_url: str | None) -> Iterator[str]:
    """An empty database (a SQLite file, or a PostgreSQL database dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/adopter.db"
        return
    assert admin_url is not None
    name = f"adopter_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def keyscope_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Overrides the plugin's: one database per backend holding both histories."""
    admin = request.getfixturevalue("postgres_admin_url") if backend == "postgresql" else None
    for url in fresh_database(backend, str(tmp_path_factory.mktemp("db")), admin):
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
