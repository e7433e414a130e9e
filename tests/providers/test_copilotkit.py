"""CopilotKitClient against the loopback Copilot Cloud fake: streaming proxy and errors."""

import time

import pytest

from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import KEY_HEADER, CopilotKitClient
from keyscope.providers.errors import (
    KeyRejected,
    ProviderError,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from keyscope.providers.fakes import RETRY_AFTER_SECONDS, FakeUpstreams
from keyscope.providers.http import SharedHttp
from tests.support.providers import (
    STREAM_CHUNKS,
    STREAM_DELAY,
    assert_not_leaked,
    new_key,
    refusing_url,
)

pytestmark = pytest.mark.anyio

BODY = b'{"operationName": "generateCopilotResponse"}'


def copilot(key: str, fakes: FakeUpstreams, http: SharedHttp) -> CopilotKitClient:
    return CopilotKitClient(key, runtime_url=fakes.copilotkit_runtime_url, http=http)


async def test_stream_arrives_chunk_by_chunk(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """Each upstream event is yielded as it arrives, spread over time, not buffered."""
    upstream = await copilot(new_key("ck_pub"), fakes, http).stream(BODY, "application/json")
    arrivals: list[tuple[float, bytes]] = []
    async for chunk in upstream:
        arrivals.append((time.monotonic(), chunk))
    events = b"".join(chunk for _, chunk in arrivals).count(b"data: ")
    assert events == STREAM_CHUNKS
    assert len(arrivals) >= STREAM_CHUNKS - 1  # neighbours may coalesce, the stream may not
    assert arrivals[-1][0] - arrivals[0][0] >= (STREAM_CHUNKS - 2) * STREAM_DELAY
    assert b'"echo": "{\\"operationName\\"' in arrivals[-1][1]
    assert upstream.is_closed


async def test_status_and_body_headers_are_exposed(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """The proxy exposes status and end-to-end headers; hop-by-hop ones stay behind."""
    async with await copilot(new_key("ck_pub"), fakes, http).stream(BODY, "text/plain") as up:
        assert up.status_code == 200
        assert up.media_type == "text/event-stream"
        assert dict(up.headers) == {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
        }
    assert up.is_closed


async def test_key_header_and_body_reach_the_runtime(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """The public key travels in X-CopilotCloud-Public-Api-Key; the body is passed verbatim."""
    key = new_key("ck_pub")
    async with await copilot(key, fakes, http).stream(BODY, "application/json") as upstream:
        async for _ in upstream:
            pass
    (record,) = fakes.records(ProviderName.COPILOTKIT)
    assert (record.method, record.path, record.key) == ("POST", "/copilotkit/v1", key)
    assert record.headers[KEY_HEADER.lower()] == key
    assert record.headers["content-type"] == "application/json"
    assert record.body == BODY


async def test_unread_stream_is_closed_by_aclose(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """A body never iterated (client gone) is released by aclose(), the service's hook."""
    upstream = await copilot(new_key("ck_pub"), fakes, http).stream(BODY, "application/json")
    assert not upstream.is_closed
    await upstream.aclose()
    assert upstream.is_closed


async def test_public_key_is_exposed_but_not_in_repr(http: SharedHttp) -> None:
    """The publishable key is readable for the frontend; repr keeps the redaction habit."""
    key = new_key("ck_pub")
    client = CopilotKitClient(key, runtime_url=None, http=http)
    assert client.public_key == key
    assert key not in repr(client)


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        ("reject", KeyRejected),
        ("forbidden", KeyRejected),
        ("ratelimit", RateLimited),
        ("boom", Unavailable),
        ("slow", UpstreamTimeout),
    ],
)
async def test_errors_are_raised_before_streaming(
    fakes: FakeUpstreams, http: SharedHttp, prefix: str, error: type[ProviderError]
) -> None:
    """A non-2xx runtime answer is translated before any body byte is handed out."""
    key = new_key(prefix)
    with pytest.raises(error) as caught:
        await copilot(key, fakes, http).stream(BODY, "application/json")
    assert caught.value.provider is ProviderName.COPILOTKIT
    assert_not_leaked(key, caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == RETRY_AFTER_SECONDS


async def test_unreachable_runtime_is_unavailable(http: SharedHttp) -> None:
    """A refused connection becomes Unavailable."""
    with refusing_url() as url, pytest.raises(Unavailable):
        await CopilotKitClient(new_key(), runtime_url=url, http=http).stream(BODY, "text/plain")
