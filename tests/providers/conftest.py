"""Fixtures for the provider adapters: loopback fakes and one set of shared pools per test."""

from collections.abc import AsyncIterator, Iterator

import pytest

from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.http import SharedHttp
from tests.support.providers import READ_TIMEOUT, SLOW_SECONDS, STREAM_CHUNKS, STREAM_DELAY


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
