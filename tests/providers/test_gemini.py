"""GeminiClient against the loopback Gemini fake: headers, answers, errors, shared pools."""

import gc
import ssl

import anyio
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors

from keyscope.providers import ProviderName
from keyscope.providers.errors import (
    BadUpstreamRequest,
    KeyRejected,
    ProviderError,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from keyscope.providers.fakes import QUOTA_RETRY_SECONDS, RETRY_AFTER_SECONDS, FakeUpstreams
from keyscope.providers.gemini import (
    DEFAULT_BASE_URL,
    GeminiAnswer,
    GeminiClient,
    gemini_http_options,
    translate_error,
)
from keyscope.providers.http import SharedHttp
from tests.support.providers import assert_not_leaked, new_key, refusing_url

pytestmark = pytest.mark.anyio

MODEL = "gemini-2.5-flash"


def gemini(key: str, fakes: FakeUpstreams, http: SharedHttp, **kwargs: str) -> GeminiClient:
    return GeminiClient(key, base_url=fakes.gemini_base_url, http=http, **kwargs)


async def test_generate_returns_the_answer_text_and_model(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """The first candidate's text and the model version come back as a GeminiAnswer."""
    answer = await gemini(new_key(), fakes, http).generate("hello there", MODEL)
    assert answer == GeminiAnswer(text="echo: hello there", model=MODEL)


async def test_key_travels_in_the_header_and_never_in_the_url(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """The fake sees the key in x-goog-api-key; neither path nor query carries it."""
    key = new_key()
    await gemini(key, fakes, http).generate("where is my key", MODEL)
    (record,) = fakes.records(ProviderName.GEMINI)
    assert record.method == "POST"
    assert record.path == f"/v1beta/models/{MODEL}:generateContent"
    assert record.key == key
    assert key not in record.path
    assert "key=" not in record.path


async def test_request_body_has_the_wire_shape(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """generateContent receives one user turn holding the prompt as a text part."""
    await gemini(new_key(), fakes, http).generate("shape check", MODEL)
    (record,) = fakes.records(ProviderName.GEMINI)
    assert record.json() == {"contents": [{"role": "user", "parts": [{"text": "shape check"}]}]}


async def test_api_version_selects_the_path(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """api_version="v1" calls /v1/..., not the default /v1beta/...."""
    await gemini(new_key(), fakes, http, api_version="v1").generate("hi", MODEL)
    (record,) = fakes.records(ProviderName.GEMINI)
    assert record.path.startswith("/v1/models/")


async def test_validate_key_lists_models_with_the_key(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """validate_key is one authenticated GET of the model list."""
    key = new_key()
    await gemini(key, fakes, http).validate_key()
    (record,) = fakes.records(ProviderName.GEMINI)
    assert (record.method, record.path.split("?")[0], record.key) == ("GET", "/v1beta/models", key)
    assert key not in record.path


@pytest.mark.parametrize(
    ("prefix", "error", "retry_after"),
    [
        ("reject", KeyRejected, None),  # Google's 400 INVALID_ARGUMENT + API_KEY_INVALID
        ("forbidden", KeyRejected, None),  # 403 PERMISSION_DENIED
        ("ratelimit", RateLimited, RETRY_AFTER_SECONDS),  # Retry-After header
        ("quota", RateLimited, QUOTA_RETRY_SECONDS),  # RetryInfo in the body only
        ("boom", Unavailable, None),
        ("garbage", Unavailable, None),  # 200 with an HTML body
        ("slow", UpstreamTimeout, None),
    ],
)
async def test_upstream_failures_are_translated_without_the_key(
    fakes: FakeUpstreams,
    http: SharedHttp,
    prefix: str,
    error: type[ProviderError],
    retry_after: int | None,
) -> None:
    """Each vendor failure becomes our error class, naming Gemini and never the key."""
    key = new_key(prefix)
    client = gemini(key, fakes, http)
    for call in (client.generate("hi", MODEL), client.validate_key()):
        with pytest.raises(error) as caught:
            await call
        assert caught.value.provider is ProviderName.GEMINI
        assert_not_leaked(key, caught.value)
        if retry_after is not None:
            assert isinstance(caught.value, RateLimited)
            assert caught.value.retry_after == retry_after


async def test_unknown_model_is_a_bad_request(fakes: FakeUpstreams, http: SharedHttp) -> None:
    """A 404 for the model becomes BadUpstreamRequest quoting Google's reason."""
    with pytest.raises(BadUpstreamRequest) as caught:
        await gemini(new_key(), fakes, http).generate("hi", "missing-model")
    assert "NOT_FOUND" in caught.value.detail


async def test_unreachable_upstream_is_unavailable(http: SharedHttp) -> None:
    """A refused connection becomes Unavailable, not an httpx exception."""
    with refusing_url() as url:
        client = GeminiClient(new_key(), base_url=url, http=http)
        with pytest.raises(Unavailable):
            await client.generate("hi", MODEL)


@pytest.mark.parametrize("bad_key", ["", "with space", "line\nbreak", "ünïcode"])
async def test_unusable_key_is_refused_before_any_request(
    http: SharedHttp, monkeypatch: pytest.MonkeyPatch, bad_key: str
) -> None:
    """An empty key must not fall back to GOOGLE_API_KEY; a broken one must not be quoted."""
    monkeypatch.setenv("GOOGLE_API_KEY", "operator-key-from-env")
    with pytest.raises(KeyRejected) as caught:
        GeminiClient(bad_key, base_url="http://127.0.0.1:9", http=http)
    if bad_key:
        assert_not_leaked(bad_key, caught.value)


async def test_environment_cannot_redirect_the_key(
    http: SharedHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOOGLE_GEMINI_BASE_URL in the process env does not move users' keys to another host."""
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://attacker.invalid")
    assert GeminiClient(new_key(), base_url=None, http=http).base_url == DEFAULT_BASE_URL


async def test_repr_hides_the_key(http: SharedHttp) -> None:
    """repr names the endpoint, never the key."""
    key = new_key()
    text = repr(GeminiClient(key, base_url="http://127.0.0.1:9", http=http))
    assert key not in text
    assert "127.0.0.1:9" in text


async def test_construction_builds_no_ssl_context(
    http: SharedHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With shared pools the SDK creates neither SSL contexts nor HTTP clients per client."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an SSL context was built per client")

    monkeypatch.setattr(ssl, "create_default_context", forbidden)
    monkeypatch.setattr(httpx, "create_ssl_context", forbidden)
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", forbidden)
    for _ in range(3):
        GeminiClient(new_key(), base_url=None, http=http)


async def test_discarded_clients_leave_the_shared_pool_open(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """Garbage-collecting per-request clients must not close the process's pools."""
    for _ in range(3):
        await gemini(new_key(), fakes, http).generate("hi", MODEL)
        gc.collect()
    assert not http.async_client.is_closed
    assert not http.sync_client.is_closed
    assert (await gemini(new_key(), fakes, http).generate("still", MODEL)).text == "echo: still"


async def test_shared_options_serve_code_that_builds_its_own_sdk_client(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """gemini_http_options lets legacy code's genai.Client (sync surface) use the shared pools."""
    key = new_key()
    options = gemini_http_options(fakes.gemini_base_url, http)

    def legacy_call() -> str | None:
        client = genai.Client(api_key=key, vertexai=False, http_options=options)
        return client.models.generate_content(model=MODEL, contents="from a thread").text

    assert await anyio.to_thread.run_sync(legacy_call) == "echo: from a thread"
    (record,) = fakes.records(ProviderName.GEMINI)
    assert record.key == key
    assert not http.sync_client.is_closed


async def test_translate_error_maps_sdk_failures_for_outside_callers(
    fakes: FakeUpstreams, http: SharedHttp
) -> None:
    """translate_error turns SDK errors, passes ours through and wraps anything else."""
    key = new_key("reject")
    client = genai.Client(
        api_key=key, vertexai=False, http_options=gemini_http_options(fakes.gemini_base_url, http)
    )
    with pytest.raises(genai_errors.APIError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    translated = translate_error(caught.value, key)
    assert isinstance(translated, KeyRejected)
    assert_not_leaked(key, translated)
    already = RateLimited(ProviderName.GEMINI, "slow down", 7)
    assert translate_error(already, key) is already
    assert isinstance(translate_error(RuntimeError("?"), key), Unavailable)
