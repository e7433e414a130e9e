"""The request-scoped provider: once per request, lazy, isolated, and a clear error outside."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from dependency_injector import providers as di
from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine, event

from keyscope.app.awaitables import awaited
from keyscope.app.deps import UserKeysDep
from keyscope.app.errors import OffEventLoop, OutsideRequestScope
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.scope import request_scope
from keyscope.app.scoped_providers import RequestScoped
from keyscope.app.security.envelope import EnvelopeCipher, Sealed
from keyscope.app.testing import StaticUserKeys
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


def test_outside_a_request_is_a_clear_error(container: Container) -> None:
    """Asking for UserKeys with no request scope open names the problem and the fix."""
    with pytest.raises(OutsideRequestScope, match="request_scope"):
        container.user_keys()


def test_an_async_load_off_the_event_loop_is_its_own_error() -> None:
    """A value that must load asynchronously, asked for with no running loop: OffEventLoop."""

    async def load() -> str:
        return "loaded"

    provider = RequestScoped(load)
    with request_scope(), pytest.raises(OffEventLoop, match="event loop"):
        provider()
    ready = RequestScoped(lambda: "ready")
    with request_scope():
        assert ready() == "ready"  # a plain value needs no loop: only real waits are refused


async def test_once_per_scope_and_shared_by_concurrent_awaits() -> None:
    """Ten concurrent resolutions in one scope share one load; another scope loads again."""
    calls = 0

    async def load() -> object:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return object()

    provider = RequestScoped(load)
    with request_scope():
        values = await asyncio.gather(*(awaited(provider()) for _ in range(10)))
    assert calls == 1
    assert all(v is values[0] for v in values)
    with request_scope():
        other = await awaited(provider())
    assert calls == 2
    assert other is not values[0]


async def test_ready_values_are_handed_out_plain_and_loads_as_one_task() -> None:
    """A sync result is stored as is; an async load is a task until done, then plain too."""
    plain = RequestScoped(lambda: "ready")
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "loaded"

    slow = RequestScoped(load)
    with request_scope():
        assert plain() == "ready"
        pending = slow()
        assert isinstance(pending, asyncio.Task)
        assert slow() is pending  # a second consumer while it loads shares the same task
        release.set()
        assert await awaited(pending) == "loaded"
        assert slow() == "loaded"  # once done: the value itself, no future to await


async def test_a_warm_request_resolves_user_keys_without_the_event_loop(
    container: Container, auth: Auth, client: httpx.AsyncClient
) -> None:
    """Token and records cached: `user_keys()` is the UserKeys itself, not an awaitable."""
    headers = auth("carol")
    await client.put("/v1/keys/gemini", json={"api_key": "gemini-0123456789ab"}, headers=headers)
    with request_scope({"authorization": headers["Authorization"]}):
        first = await awaited(container.user_keys())  # may load: the token is new here
    with request_scope({"authorization": headers["Authorization"]}):
        warm = container.user_keys()
        assert isinstance(warm, UserKeys)
        assert warm is not first
        assert warm.require(ProviderName.GEMINI).secret.reveal() == "gemini-0123456789ab"


async def test_client_factories_await_a_loading_user_keys_after_a_ready_one(
    container: Container,
) -> None:
    """A client factory first fed a ready UserKeys still awaits a loading one later.

    Regression: dependency-injector fixes a provider's async mode on its first call, and a
    container instance does not inherit the mode set on its class; an unpinned factory fed a
    plain value first passed a later task into the client builder unawaited (a 500).
    """
    keys = StaticUserKeys("erin", {ProviderName.EXA: "exa-erin-0123456789"})
    container.user_keys.override(di.Object(keys))
    with request_scope():
        ready = await awaited(container.exa_client())

    async def load() -> StaticUserKeys:
        await asyncio.sleep(0)
        return keys

    container.user_keys.override(RequestScoped(load))
    with request_scope():
        loading = await awaited(container.exa_client())
    assert type(ready) is type(loading)
    assert repr(loading) == repr(ready)  # built with erin's key both times (redacted repr)


async def test_closed_scope_refuses_new_values() -> None:
    """A task that outlives its request cannot create request-scoped values afterwards."""
    provider = RequestScoped(lambda: object())
    with request_scope() as scope:
        provider()
    with pytest.raises(OutsideRequestScope, match="already closed"):
        scope.get_or_create(provider, object)


async def test_failed_load_is_shared_and_not_left_unretrieved() -> None:
    """A load that raises raises for every consumer in the request, and closing stays quiet."""

    async def load() -> object:
        raise LookupError("boom")

    provider = RequestScoped(load)
    with request_scope():
        for _ in range(2):
            with pytest.raises(LookupError):
                await awaited(provider())


class CountingCipher(EnvelopeCipher):
    """Counts decryptions (overrides `cipher` through the container)."""

    opened = 0

    def open(self, sealed: Sealed, *, owner: str, provider: str) -> str:
        type(self).opened += 1
        return super().open(sealed, owner=owner, provider=provider)


@pytest.fixture
def queries(clean_engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(clean_engine, "before_cursor_execute", record)
    yield statements
    event.remove(clean_engine, "before_cursor_execute", record)


async def test_lazy_a_request_without_clients_decrypts_and_queries_nothing(
    container: Container, auth: Auth, queries: list[str]
) -> None:
    """Listing keys decrypts nothing; a warm-cache provider call queries nothing and decrypts
    only the provider it uses."""
    container.cipher.override(di.Singleton(CountingCipher, container.keyring))
    CountingCipher.opened = 0
    app = _app(container)
    async with _client(app) as client:
        for provider in ("gemini", "exa"):
            await client.put(
                f"/v1/keys/{provider}",
                json={"api_key": f"{provider}-0123456789ab"},
                headers=auth("alice"),
            )
        await client.get("/v1/keys", headers=auth("alice"))
        assert CountingCipher.opened == 0
        queries.clear()
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": "hi"}, headers=auth("alice")
        )
        assert response.status_code == 200
        assert queries == []  # before shut-down, whose usage flush writes on its own
    assert CountingCipher.opened == 1


async def test_cache_miss_costs_exactly_one_query(
    container: Container, auth: Auth, queries: list[str]
) -> None:
    """With a cold record cache, resolving UserKeys for a provider call is one SELECT."""
    app = _app(container)
    async with _client(app) as client:
        await client.put("/v1/keys/exa", json={"api_key": "exa-0123456789ab"}, headers=auth("bob"))
        container.record_cache().clear()
        queries.clear()
        response = await client.post("/v1/exa/search", json={"query": "hi"}, headers=auth("bob"))
        assert response.status_code == 200
        # Counted before shut-down, whose usage flush writes on its own.
        assert len(queries) == 1, queries
        assert queries[0].lstrip().upper().startswith("SELECT")


async def test_override_user_keys_with_a_plain_object(
    container: Container, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Override style 1: a fixed UserKeys for every request (no database involved)."""
    fixed = StaticUserKeys("tester", {ProviderName.EXA: "exa-fixed-0123456789"})
    container.user_keys.override(di.Object(fixed))
    async with _client(_app(container)) as client:
        response = await client.post("/v1/exa/search", json={"query": "hi"}, headers=auth("anyone"))
    assert response.status_code == 200
    assert [r.key for r in upstreams.records()] == ["exa-fixed-0123456789"]


async def test_override_a_client_with_a_fake(container: Container, auth: Auth) -> None:
    """Override a provider client directly: the route gets the fake, nothing goes upstream."""

    class FakeExa:
        async def search(self, query: str, _num_results: int) -> list[Any]:
            from keyscope.providers.exa import ExaResult

            return [ExaResult(title=f"fake {query}", url="https://example.test")]

    container.exa_client.override(di.Factory(FakeExa))
    container.user_keys.override(
        di.Object(StaticUserKeys("t", {ProviderName.EXA: "unused-0123456789"}))
    )
    async with _client(_app(container)) as client:
        response = await client.post("/v1/exa/search", json={"query": "q"}, headers=auth("anyone"))
    assert response.json() == {"results": [{"title": "fake q", "url": "https://example.test"}]}


async def test_def_endpoint_sees_its_own_request_values(container: Container, auth: Auth) -> None:
    """A `def` endpoint in the thread pool receives the UserKeys of its own request."""
    router = APIRouter()

    @router.get("/whoami")
    def whoami(keys: UserKeysDep) -> dict[str, str]:
        return {"user": keys.user_id}

    app = _app(container)
    app.include_router(router)
    async with _client(app) as client:
        answers = await asyncio.gather(
            *(client.get("/whoami", headers=auth(f"u{i}")) for i in range(30))
        )
    assert [a.json()["user"] for a in answers] == [f"u{i}" for i in range(30)]


def _app(container: Container) -> FastAPI:
    from keyscope.app.main import create_app

    return create_app(container)


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # With the lifespan: it starts the cache listener, without which PostgreSQL reads through.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client
