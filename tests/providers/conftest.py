"""Fixtures for the provider adapters: loopback fakes and one set of shared pools per test."""

from collections.abc import AsyncIterator, Iterator

import pytest

from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.http import SharedHttp

# Longer than the clients' read timeout below, so `slow…` keys time out quickly.
SLOW_SECONDS = 1.0
READ_TIMEOUT = 0.4
STREAM_CHUNKS = 5
STREAM_DELAY = 0.03


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def module_fakes() -> Iterator[FakeUpstreams]:
    with FakeUpstreams(
        slow_seconds=SLOW_SECONDS, stream_chunks=STREAM_CHUNKS, stream_delay=STREAM_DELAY
    ) as fakes:
        yield fakes


@pytest.fixture
def fakes(module_fakes: FakeUpstreams) -> FakeUpstreams:
    """The module's fake upstreams, with no records left from earlier tests."""
    module_fakes.clear()
    return module_fakes


@pytest.fixture
async def http() -> AsyncIterator[SharedHttp]:
    """Shared pools bound to this test's event loop, closed after it."""
    async with SharedHttp(connect_timeout=1.0, read_timeout=READ_TIMEOUT) as shared:
        yield shared
