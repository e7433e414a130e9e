"""The testing kit for apps that use keyscope (the pytest fixtures are in
`keyscope.app.pytest_plugin`).

    upstreams = FakeUpstreams()                      # loopback Gemini / Exa / Copilot Cloud
    container = make_test_container(url, upstreams=upstreams)
    async with app_client(create_my_app(container)) as client:   # lifespan entered
        await client.put("/v1/keys/gemini", json={"api_key": "k-alice"},
                         headers=auth_headers(container, "alice"))
        ...
    assert keys_seen(upstreams, ProviderName.GEMINI) == ["k-alice"]

Nothing here writes a file: the test container has its own secrets (no local-mode files) and
the database is the one you give (`migrate()` it first, or use the plugin's fixture).

PostgreSQL: `postgres_database()` is a throw-away database on the server named by
`KEYSCOPE_TEST_POSTGRES_URL` (default `postgresql+psycopg://postgres@127.0.0.1:5432/postgres`),
dropped on exit; `require_postgres()` (for pytest) skips a test when that server does not
answer, or fails it under `KEYSCOPE_TEST_REQUIRE_POSTGRES=1` (CI).

Two ways to fix a user's keys without a token or a database:

    container.user_keys.override(providers.Object(StaticUserKeys("alice", {GEMINI: "k"})))

(or override with another `RequestScoped` to keep once-per-request loading), and
`override_client()` replaces one provider's client outright.
"""

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import httpx
from dependency_injector import providers as di
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyscope.app.keys.policy import KeyOrigin, KeyPolicy
from keyscope.app.keys.secret import Secret
from keyscope.app.keys.user_keys import ResolvedKey, UserKeys
from keyscope.app.migrate import upgrade as migrate
from keyscope.app.security.tokens import mint_token
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams, UpstreamRecord

__all__ = [
    "FakeUpstreams",
    "LifespanFailed",
    "StaticUserKeys",
    "UpstreamRecord",
    "app_client",
    "auth_headers",
    "keys_seen",
    "make_test_container",
    "make_test_settings",
    "migrate",
    "override_client",
    "postgres_admin_url",
    "postgres_database",
    "postgres_unreachable",
    "require_postgres",
    "running",
    "token_for",
    "upstream_settings",
]


class StaticUserKeys(UserKeys):
    """A UserKeys holding plaintext keys given directly (tests only)."""

    def __init__(self, user_id: str, secrets: Mapping[ProviderName, str]) -> None:
        super().__init__(user_id, {}, None, KeyPolicy({}, frozenset()))  # type: ignore[arg-type]  # never decrypts
        self._static = dict(secrets)

    def get(self, provider: ProviderName) -> ResolvedKey | None:
        secret = self._static.get(provider)
        return ResolvedKey(Secret(secret), KeyOrigin.USER) if secret is not None else None


def upstream_settings(upstreams: FakeUpstreams) -> dict[str, str]:
    """The settings that point every provider client at the loopback fakes."""
    return {
        "gemini_base_url": upstreams.gemini_base_url,
        "exa_base_url": upstreams.exa_base_url,
        "copilotkit_base_url": upstreams.copilotkit_runtime_url,
    }


def make_test_settings(
    database_url: str, *, upstreams: FakeUpstreams | None = None, **overrides: Any
) -> Settings:
    """Production-mode settings with fresh test secrets and no platform keys, whatever the
    environment or a `.env` file says: the operator's keys can never leak into a test."""
    values: dict[str, Any] = {
        "deploy_env": "production",
        "database_url": database_url,
        "master_keys": SecretStr("test:" + base64.b64encode(secrets.token_bytes(32)).decode()),
        "jwt_secret": SecretStr(secrets.token_urlsafe(48)),
        "jwt_public_key": None,
        "jwt_jwks_url": None,
        "gemini_api_key": None,
        "google_api_key": None,
        "exa_api_key": None,
        "copilotkit_api_key": None,
        "platform_fallback": "",
        "legacy_env": "off",
        # Off by default: a save-time check is one more upstream call (tests count them) and
        # would leave the machine without fakes; pass key_validation=True to test it.
        "key_validation": False,
    }
    if upstreams is not None:
        values.update(upstream_settings(upstreams))
    values.update(overrides)
    return Settings(_env_file=None, **values)


def make_test_container(
    database_url: str, *, upstreams: FakeUpstreams | None = None, **overrides: Any
) -> Container:
    """A container of its own for one test (see `make_test_settings` for the settings)."""
    settings = make_test_settings(database_url, upstreams=upstreams, **overrides)
    return Container(settings=di.Object(settings))


def token_for(container: Container, subject: str, **kwargs: Any) -> str:
    """A token the container's app accepts for `subject` (HS256 test secret)."""
    settings = container.settings()
    if settings.jwt_secret is None:
        raise ValueError("token_for() needs a container with an HS256 jwt_secret")
    kwargs.setdefault("audience", settings.jwt_audience)
    kwargs.setdefault("issuer", settings.jwt_issuer)
    return mint_token(settings.jwt_secret.get_secret_value(), subject, **kwargs)


def auth_headers(container: Container, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(container, subject)}"}


def override_client(container: Container, provider: ProviderName, client: object) -> Any:
    """Make `provider`'s client `client` for every injection; a context manager that undoes it
    on exit (or call `container.<provider>_client.reset_override()`)."""
    factory: di.Provider[Any] = getattr(container, f"{provider.value}_client")
    return factory.override(di.Object(client))


def keys_seen(upstreams: FakeUpstreams, provider: ProviderName) -> list[str | None]:
    """The key each request to `provider`'s fake carried, in arrival order."""
    return [record.key for record in upstreams.records(provider)]


DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    """The test server's URL: `KEYSCOPE_TEST_POSTGRES_URL`, else the local default."""
    return os.environ.get("KEYSCOPE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


def postgres_unreachable(admin_url: str | None = None) -> str | None:
    """Why the test server does not answer (one line, no password), or None when it does."""
    url = admin_url or postgres_admin_url()
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return f"PostgreSQL unreachable at {make_url(url).render_as_string()}: {exc.orig}"
    finally:
        engine.dispose()
    return None


def require_postgres(admin_url: str | None = None) -> str:
    """The test server's URL if it answers; else skip the running pytest test, or fail it
    under `KEYSCOPE_TEST_REQUIRE_POSTGRES=1` (CI must not go green by skipping PostgreSQL)."""
    import pytest  # only the test run needs it; the kit's other helpers do not

    url = admin_url or postgres_admin_url()
    reason = postgres_unreachable(url)
    if reason is not None:
        if os.environ.get("KEYSCOPE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"KEYSCOPE_TEST_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return url


@contextmanager
def postgres_database(
    admin_url: str | None = None, *, prefix: str = "keyscope_test"
) -> Iterator[str]:
    """A fresh, empty database on the test server (named `prefix` + random hex), its URL
    yielded, dropped on exit even if connections are still open. Migrate it yourself."""
    url = admin_url or postgres_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class LifespanFailed(RuntimeError):
    """The app refused to start (its ASGI lifespan start-up failed); the message says why."""


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """`app` with its ASGI lifespan started (as a server runs it: through every middleware,
    with lifespan state), shut down on exit; yields the app to send requests to."""
    state: dict[str, Any] = {}
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}

    async def receive() -> Message:
        return await to_app.get()

    async def send(message: Message) -> None:
        await from_app.put(message)

    async def serve() -> None:
        await app(scope, receive, send)

    task = asyncio.create_task(serve())
    await to_app.put({"type": "lifespan.startup"})
    started = await _next_message(from_app, task)
    if started["type"] == "lifespan.startup.failed":
        task.cancel()  # as a server does: the app may still wait for a shutdown message
        await _finish(task)
        raise LifespanFailed(started.get("message", ""))

    async def with_state(request: Scope, receive: Receive, send: Send) -> None:
        await app({**request, "state": dict(state)}, receive, send)

    try:
        yield with_state
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        stopped = await _next_message(from_app, task)
        await _finish(task)
        if stopped["type"] == "lifespan.shutdown.failed":
            raise LifespanFailed(stopped.get("message", ""))


async def _next_message(queue: "asyncio.Queue[Message]", task: "asyncio.Task[None]") -> Message:
    getter = asyncio.ensure_future(queue.get())
    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    task.result()  # the app ended without answering: raise what it raised
    raise LifespanFailed("the app returned without answering the lifespan message")


async def _finish(task: "asyncio.Task[None]") -> None:
    with suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)


@asynccontextmanager
async def app_client(
    app: FastAPI, base_url: str = "http://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on `app` (in process) with the app's lifespan started around it (see
    `running`: a start-up the app refuses raises `LifespanFailed`)."""
    async with running(app) as started:
        transport = httpx.ASGITransport(app=started)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
