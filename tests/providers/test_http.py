"""SharedHttp and the helpers every adapter shares."""

import email.utils
import ssl
import time
from typing import Any

import httpx
import pytest

from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.errors import KeyRejected, RateLimited
from keyscope.providers.fakes import FakeUpstreams
from keyscope.providers.http import SharedHttp, redact, require_header_safe_key, retry_after_seconds
from tests.support.providers import new_key

pytestmark = pytest.mark.anyio


async def test_one_ssl_context_is_built_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building SharedHttp loads the CA bundle once, for both clients; a given context, never."""
    built: list[ssl.SSLContext] = []
    real_create = httpx.create_ssl_context

    def counting_create(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(real_create(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", counting_create)
    async with SharedHttp() as http:
        assert built == [http.ssl_context]
    given = ssl.create_default_context()
    async with SharedHttp(ssl_context=given) as http:
        assert http.ssl_context is given
    assert len(built) == 1


async def test_aclose_closes_both_pools() -> None:
    """aclose() is the app's shutdown: both clients end closed."""
    http = SharedHttp()
    await http.aclose()
    assert http.async_client.is_closed
    assert http.sync_client.is_closed
    assert http.is_closed
    assert "closed" in repr(http)


async def test_timeouts_come_from_the_constructor() -> None:
    """Timeouts are arguments (no settings read here); SDKs get the read timeout in ms."""
    async with SharedHttp(connect_timeout=2, read_timeout=1.5, write_timeout=3) as http:
        assert http.async_client.timeout == httpx.Timeout(connect=2, read=1.5, write=3, pool=5)
        assert http.request_timeout_ms == 1500


async def test_redirects_are_not_followed() -> None:
    """Custom key headers would survive a cross-origin redirect, so none is followed."""
    async with SharedHttp() as http:
        assert not http.async_client.follow_redirects
        assert not http.sync_client.follow_redirects


async def test_failed_streams_give_their_connections_back(fakes: FakeUpstreams) -> None:
    """Errors and abandoned bodies release pooled connections: a pool of 2 keeps working."""
    async with SharedHttp(max_connections=2, pool_timeout=1.0, read_timeout=5) as http:
        url = fakes.copilotkit_runtime_url
        for _ in range(5):
            with pytest.raises(KeyRejected):
                await CopilotKitClient(new_key("reject"), runtime_url=url, http=http).stream(
                    b"{}", "application/json"
                )
            abandoned = await CopilotKitClient(new_key(), runtime_url=url, http=http).stream(
                b"{}", "application/json"
            )
            await abandoned.aclose()
        upstream = await CopilotKitClient(new_key(), runtime_url=url, http=http).stream(
            b"{}", "application/json"
        )
        assert b"data: " in b"".join([chunk async for chunk in upstream])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), (" 120 ", 120), ("soon", None), ("-3", None), ("", None)],
)
def test_retry_after_delta_seconds(value: str, expected: int | None) -> None:
    """Retry-After in seconds parses; nonsense gives None rather than a guess."""
    assert retry_after_seconds(httpx.Headers({"Retry-After": value})) == expected


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date becomes the seconds until then."""
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_seconds(httpx.Headers({"Retry-After": when}))
    assert seconds is not None
    assert 28 <= seconds <= 31
    assert retry_after_seconds(httpx.Headers()) is None


@pytest.mark.parametrize("key", ["", " padded", "tab\tkey", "new\nline", "nul\x00", "é-key"])
def test_header_unsafe_keys_are_rejected_without_quoting_them(key: str) -> None:
    """Keys a header cannot carry are refused with a message that does not contain them."""
    with pytest.raises(KeyRejected) as caught:
        require_header_safe_key(ProviderName.EXA, key)
    if key:
        assert key not in str(caught.value)


def test_header_safe_keys_are_exactly_visible_ascii() -> None:
    """Every one-character key is accepted iff it is visible ASCII (0x21-0x7e)."""
    for code in range(0x2FF):
        key = f"ck_pub_{chr(code)}"
        if 0x21 <= code <= 0x7E:
            assert require_header_safe_key(ProviderName.EXA, key) == key
        else:
            with pytest.raises(KeyRejected):
                require_header_safe_key(ProviderName.EXA, key)


def test_redact_removes_the_secret_and_bounds_the_length() -> None:
    """Upstream text quoted in errors loses the key and stays short."""
    secret = new_key()
    text = redact(f"bad key {secret} " + "x" * 500, secret)
    assert secret not in text
    assert "[redacted]" in text
    assert len(text) <= 200


def test_rate_limited_keeps_retry_after() -> None:
    """RateLimited carries retry_after for the service's Retry-After header."""
    assert RateLimited(ProviderName.GEMINI, "slow down", 7).retry_after == 7
