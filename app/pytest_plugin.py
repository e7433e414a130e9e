"""pytest fixtures for apps that use keyscope: list it in your root conftest.py,

    pytest_plugins = ["keyscope.app.pytest_plugin"]

and ask for `keyscope_container` (a container of its own per test, on a migrated database
emptied before the test, pointed at the loopback fakes), `keyscope_upstreams` (the fakes,
records cleared per test) and `keyscope_auth` (headers for a user). Override
`keyscope_database_url` to run on another database, e.g. a PostgreSQL one per session:

    @pytest.fixture(scope="session")
    def keyscope_database_url() -> Iterator[str]:
        with postgres_database(require_postgres()) as url:   # both in keyscope.app.testing
            migrate(url)
            yield url

`require_postgres()` skips the test when the test server does not answer, and fails it when
`KEYSCOPE_TEST_REQUIRE_POSTGRES=1` (set it in CI: a suite must not go green by skipping the
production engine).

The plugin also points `KEYSCOPE_STATE_DIR` at a temporary directory for the test session
unless it is set, so importing an app that builds its own container in local mode writes its
development secrets there, not into your project or your home directory.
"""

import os
import tempfile
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete

from keyscope.app.keys.models import provider_keys
from keyscope.app.testing import (
    FakeUpstreams,
    auth_headers,
    make_test_container,
    migrate,
)
from keyscope.containers import Container

_state_dir: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001  # pytest's hook signature
    global _state_dir
    if "KEYSCOPE_STATE_DIR" not in os.environ:
        _state_dir = tempfile.TemporaryDirectory(prefix="keyscope-test-state-")
        os.environ["KEYSCOPE_STATE_DIR"] = _state_dir.name


def pytest_unconfigure(config: pytest.Config) -> None:  # noqa: ARG001  # pytest's hook signature
    global _state_dir
    if _state_dir is not None:
        os.environ.pop("KEYSCOPE_STATE_DIR", None)
        _state_dir.cleanup()
        _state_dir = None


@pytest.fixture(scope="session")
def keyscope_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database migrated to keyscope's head, for the whole session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('keyscope-db') / 'keyscope.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def _keyscope_session_upstreams() -> Iterator[FakeUpstreams]:
    with FakeUpstreams() as fakes:
        yield fakes


@pytest.fixture
def keyscope_upstreams(_keyscope_session_upstreams: FakeUpstreams) -> FakeUpstreams:
    """Loopback Gemini / Exa / Copilot Cloud servers, their records cleared for this test."""
    _keyscope_session_upstreams.clear()
    return _keyscope_session_upstreams


@pytest.fixture
def keyscope_container(
    keyscope_database_url: str, keyscope_upstreams: FakeUpstreams
) -> Iterator[Container]:
    """A container for this test only, on an emptied database, clients pointed at the fakes."""
    container = make_test_container(keyscope_database_url, upstreams=keyscope_upstreams)
    engine = container.engine()
    with engine.begin() as conn:
        conn.execute(delete(provider_keys))
    yield container
    container.unwire()
    engine.dispose()


@pytest.fixture
def keyscope_auth(keyscope_container: Container) -> Callable[[str], dict[str, str]]:
    """`keyscope_auth("alice")` -> Authorization headers the test container accepts."""
    return lambda subject: auth_headers(keyscope_container, subject)
