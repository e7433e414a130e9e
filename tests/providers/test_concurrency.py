"""Many concurrent callers, each with their own key: every request reaches the fake with it.

These tests check isolation, not latency: they use their own pools with the library's
default timeouts, not the short read timeout the other provider tests use to make `slow…`
keys fail fast (a loaded machine could otherwise time out an honest call). Each test is
bounded as a whole instead.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

pytestmark = pytest.mark.anyio

USERS = 100
WHOLE_TEST_SECONDS = 60


@pytest.fixture
async def http() -> AsyncIterator[SharedHttp]:
    """Shared pools with default timeouts, for this module only (overrides the conftest's)."""
    async with SharedHttp() as shared:
        yield shared


def key_of(provider: str, user: int) -> str:
    return f"{provider}-user{user:03d}-0123456789abcdef"


async def test_concurrent_gemini_calls_each_carry_their_own_key(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """100 simultaneous generate calls: each prompt reaches Gemini with its caller's key."""

    async def call(user: int) -> str:
        client = GeminiClient(key_of("gemini", user), base_url=fakes.gemini_base_url, http=http)
        return (await client.generate(f"prompt of user {user}", "gemini-2.5-flash")).text

    async with asyncio.timeout(WHOLE_TEST_SECONDS):
        answers = await asyncio.gather(*(call(user) for user in range(USERS)))
    assert answers == [f"echo: prompt of user {user}" for user in range(USERS)]
    seen = {
        record.json()["contents"][0]["parts"][0]["text"]: record.key
        for record in fakes.records(ProviderName.GEMINI)
    }
    assert seen == {f"prompt of user {user}": key_of("gemini", user) for user in range(USERS)}


async def test_concurrent_exa_searches_each_carry_their_own_key(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """100 simultaneous searches: each query reaches Exa with its caller's key."""

    async def call(user: int) -> str | None:
        client = ExaClient(key_of("exa", user), base_url=fakes.exa_base_url, http=http)
        return (await client.search(f"query {user}", 1))[0].title

    async with asyncio.timeout(WHOLE_TEST_SECONDS):
        titles = await asyncio.gather(*(call(user) for user in range(USERS)))
    assert titles == [f"query {user} #1" for user in range(USERS)]
    seen = {r.json()["query"]: r.key for r in fakes.records(ProviderName.EXA)}
    assert seen == {f"query {user}": key_of("exa", user) for user in range(USERS)}


async def test_concurrent_streams_each_carry_their_own_key(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """100 simultaneous runtime streams, interleaved: each body and key stay together."""

    async def call(user: int) -> bytes:
        client = CopilotKitClient(
            key_of("copilotkit", user), runtime_url=fakes.copilotkit_runtime_url, http=http
        )
        body = f'{{"user": {user}}}'.encode()
        async with await client.stream(body, "application/json") as upstream:
            return b"".join([chunk async for chunk in upstream])

    async with asyncio.timeout(WHOLE_TEST_SECONDS):
        streams = await asyncio.gather(*(call(user) for user in range(USERS)))
    for user, received in enumerate(streams):
        assert f'{{\\"user\\": {user}}}'.encode() in received
    seen = {r.json()["user"]: r.key for r in fakes.records(ProviderName.COPILOTKIT)}
    assert seen == {user: key_of("copilotkit", user) for user in range(USERS)}
