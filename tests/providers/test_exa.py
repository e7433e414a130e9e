"""ExaClient against the loopback Exa fake: header, body, results, errors."""

import pytest

from keyscope.providers import ProviderName
from keyscope.providers.errors import (
    KeyRejected,
    ProviderError,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from keyscope.providers.exa import ExaClient, ExaResult
from keyscope.providers.fakes import RETRY_AFTER_SECONDS, FakeUpstreams
from keyscope.providers.http import SharedHttp
from tests.support.providers import assert_not_leaked, new_key, refusing_url

pytestmark = pytest.mark.anyio


def exa(key: str, fakes: FakeUpstreams, http: SharedHttp) -> ExaClient:
    return ExaClient(key, base_url=fakes.exa_base_url, http=http)


async def test_search_returns_titles_and_urls(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """Results come back in order as (title, url) pairs, as many as asked for."""
    results = await exa(new_key(), fakes, http).search("keyscope", 3)
    assert results == [
        ExaResult(title=f"keyscope #{n}", url=f"https://example.com/{n}") for n in (1, 2, 3)
    ]


async def test_key_in_x_api_key_and_body_in_wire_shape(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """POST /search carries the key in x-api-key and {"query", "numResults"} as JSON."""
    key = new_key()
    await exa(key, fakes, http).search("wire", 2)
    (record,) = fakes.records(ProviderName.EXA)
    assert (record.method, record.path, record.key) == ("POST", "/search", key)
    assert record.json() == {"query": "wire", "numResults": 2}
    assert key not in record.path


async def test_validate_key_is_one_result_search(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """validate_key spends one single-result search with the key."""
    key = new_key()
    await exa(key, fakes, http).validate_key()
    (record,) = fakes.records(ProviderName.EXA)
    assert record.key == key
    assert record.json()["numResults"] == 1


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        ("reject", KeyRejected),
        ("forbidden", KeyRejected),
        ("ratelimit", RateLimited),
        ("boom", Unavailable),
        ("garbage", Unavailable),
        ("slow", UpstreamTimeout),
    ],
)
async def test_upstream_failures_are_translated_without_the_key(
    fakes: FakeUpstreams, http: SharedHttp, prefix: str, error: type[ProviderError]
) -> None:
    """Each vendor failure becomes our error class, naming Exa and never the key."""
    key = new_key(prefix)
    with pytest.raises(error) as caught:
        await exa(key, fakes, http).search("hi", 1)
    assert caught.value.provider is ProviderName.EXA
    assert_not_leaked(key, caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == RETRY_AFTER_SECONDS


async def test_missing_retry_after_stays_none(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """A 429 without Retry-After gives retry_after=None, not a guess."""
    with pytest.raises(RateLimited) as caught:
        await exa(new_key("quota"), fakes, http).search("hi", 1)
    assert caught.value.retry_after is None


async def test_unreachable_upstream_is_unavailable(http: SharedHttp) -> None:
    """A refused connection becomes Unavailable."""
    with refusing_url() as url, pytest.raises(Unavailable):
        await ExaClient(new_key(), base_url=url, http=http).search("hi", 1)


async def test_unusable_key_and_repr(http: SharedHttp) -> None:
    """An empty key is refused up front; repr never shows a key."""
    with pytest.raises(KeyRejected):
        ExaClient("", base_url=None, http=http)
    key = new_key()
    assert key not in repr(ExaClient(key, base_url=None, http=http))
