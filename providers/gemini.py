"""Gemini through google-genai, one SDK client per caller's key, on the process's shared pools.

A `genai.Client` is cheap only when it is handed everything it would otherwise build: both
httpx clients (else it creates them, each with a fresh SSL context) and an SSL context in
`async_client_args["ssl"]` (else it creates one for its websocket API on every construction).
With those it is cheap (docs/performance.md), so building one per request is fine. It never
closes clients it was handed, so per-request clients cannot close the shared pools.
"""

import json
import math
from dataclasses import dataclass
from typing import Any

import httpx
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from keyscope.providers import ProviderName
from keyscope.providers.errors import (
    BadUpstreamRequest,
    KeyRejected,
    ProviderError,
    Unavailable,
    error_for_status,
)
from keyscope.providers.http import (
    SharedHttp,
    deadline,
    error_for_transport,
    redact,
    require_header_safe_key,
    retry_after_seconds,
)

# Set explicitly so that GOOGLE_GEMINI_BASE_URL in the process environment cannot send every
# user's key to another host.
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"

_PROVIDER = ProviderName.GEMINI

# What a call can fail with once the SDK is configured; everything else is a bug and propagates.
# The SDK parses a 200 body with a bare json.loads, so a non-JSON answer (a proxy's HTML page)
# surfaces as JSONDecodeError rather than as its own UnknownApiResponseError.
_UPSTREAM_FAILURES = (
    pydantic.ValidationError,  # a 200 whose body has the wrong shape
    genai_errors.APIError,
    genai_errors.UnknownApiResponseError,
    json.JSONDecodeError,
    httpx.HTTPError,
)


@dataclass(frozen=True, slots=True)
class GeminiAnswer:
    """The text of the first candidate and the model version that produced it."""

    text: str
    model: str


class GeminiClient:
    """The caller's Gemini key bound to one `genai.Client` that borrows the shared pools.

    The key travels only in the `x-goog-api-key` header (google-genai's API-key mode), never
    in the URL. The SDK client is held for this object's whole life: a temporary one would be
    closed by its `__del__` in the middle of a call.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None,
        http: SharedHttp,
        api_version: str = "v1beta",
    ) -> None:
        self._api_key = require_header_safe_key(_PROVIDER, api_key)
        self.base_url = base_url or DEFAULT_BASE_URL
        self.api_version = api_version
        self._deadline = http.deadline
        options = gemini_http_options(self.base_url, http, api_version)
        # vertexai=False pins the Gemini Developer API even if GOOGLE_GENAI_USE_VERTEXAI is set.
        self._genai = genai.Client(api_key=self._api_key, vertexai=False, http_options=options)

    async def generate(self, prompt: str, model: str) -> GeminiAnswer:
        """generateContent with one user turn; the answer is the first candidate's text."""
        if not model.strip():
            raise BadUpstreamRequest(_PROVIDER, "no model named")
        try:
            async with deadline(_PROVIDER, self._deadline):
                response = await self._genai.aio.models.generate_content(
                    model=model, contents=prompt
                )
        except _UPSTREAM_FAILURES as exc:
            raise _translate(exc, self._api_key) from None
        try:
            text = response.text
        except (ValueError, TypeError, AttributeError):
            raise Unavailable(_PROVIDER, "malformed answer") from None
        if text is None:
            raise _no_text(response)
        return GeminiAnswer(text=text, model=response.model_version or model)

    async def validate_key(self) -> None:
        """List one model: the cheapest call that proves the key is accepted."""
        try:
            async with deadline(_PROVIDER, self._deadline):
                await self._genai.aio.models.list(config=types.ListModelsConfig(page_size=1))
        except _UPSTREAM_FAILURES as exc:
            raise _translate(exc, self._api_key) from None

    def __repr__(self) -> str:
        return (
            f"GeminiClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
            "api_key=<redacted>)"
        )


def _error_for_api_error(exc: genai_errors.APIError, api_key: str) -> ProviderError:
    status_name = exc.status or ""
    message = redact(exc.message or "", api_key) if exc.message else ""
    detail = ": ".join(part for part in (status_name, message) if part) or None
    # Google answers an unknown or disabled key with 400 INVALID_ARGUMENT, not 401/403; the
    # machine-readable reason (API_KEY_INVALID, API_KEY_SERVICE_BLOCKED, ...) tells them apart.
    if exc.code == 400 and any(r.startswith("API_KEY_") for r in _error_reasons(exc.details)):
        return KeyRejected(_PROVIDER, f"upstream answered 400: {detail}")
    retry_after = None
    if exc.code == 429:
        response = exc.response
        if isinstance(response, httpx.Response):
            retry_after = retry_after_seconds(response.headers)
        if retry_after is None:
            retry_after = _retry_info_seconds(exc.details)
    return error_for_status(_PROVIDER, exc.code, retry_after=retry_after, upstream_detail=detail)


def _error_details(body: Any) -> list[dict[str, Any]]:
    """The `error.details` list of a google.rpc.Status body, tolerant of odd shapes."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return []
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _error_reasons(body: Any) -> list[str]:
    return [str(d["reason"]) for d in _error_details(body) if "reason" in d]


def _retry_info_seconds(body: Any) -> int | None:
    """google.rpc.RetryInfo's `retryDelay` ("7s", "1.5s"), rounded up to whole seconds."""
    for detail in _error_details(body):
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                seconds = float(delay[:-1])
            except ValueError:
                continue
            return max(0, math.ceil(seconds))
    return None


def _no_text(response: types.GenerateContentResponse) -> ProviderError:
    """An answer without text: a refusal Gemini explains (the request's fault, 400) or a
    body without the expected shape (a broken upstream, 502). Never quotes the answer."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return BadUpstreamRequest(_PROVIDER, f"prompt blocked ({feedback.block_reason.value})")
    candidate = response.candidates[0] if response.candidates else None
    reason = candidate.finish_reason if candidate is not None else None
    if reason is not None and reason.value not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        return BadUpstreamRequest(
            _PROVIDER, f"no text in the answer (finish reason {reason.value})"
        )
    return Unavailable(_PROVIDER, "malformed answer: no candidate text")


def gemini_http_options(
    base_url: str | None, http: SharedHttp, api_version: str = "v1beta"
) -> types.HttpOptions:
    """google-genai options that borrow the shared pools and SSL context.

    Also for code that builds its own `genai.Client` (the legacy example service). `timeout`
    is always set: the SDK passes it with every request, and its default (None) would switch
    off the shared client's timeouts. The SDK takes one number, so the read timeout bounds
    connect and write too.
    """
    return types.HttpOptions(
        base_url=base_url or DEFAULT_BASE_URL,
        api_version=api_version,
        timeout=http.request_timeout_ms,
        httpx_client=http.sync_client,
        httpx_async_client=http.async_client,
        async_client_args={"ssl": http.ssl_context},
    )


def translate_error(exc: Exception, api_key: str) -> ProviderError:
    """Our error for a google-genai / httpx failure raised by code outside GeminiClient.

    Unlike GeminiClient, which lets programming errors propagate, this also turns unknown
    exceptions into Unavailable: its callers (legacy code) catch everything.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, _UPSTREAM_FAILURES):
        return _translate(exc, api_key)
    return Unavailable(_PROVIDER, f"upstream call failed ({type(exc).__name__})")


def _translate(exc: Exception, api_key: str) -> ProviderError:
    """Our error for an SDK or httpx failure (one of _UPSTREAM_FAILURES).

    Callers raise it `from None`: the SDK's messages embed the upstream body verbatim and
    httpx's may quote headers, so neither belongs in our logs.
    """
    if isinstance(exc, genai_errors.APIError):
        return _error_for_api_error(exc, api_key)
    if isinstance(exc, httpx.HTTPError):
        return error_for_transport(_PROVIDER, exc)
    if isinstance(exc, pydantic.ValidationError):
        return Unavailable(_PROVIDER, "malformed answer")
    return Unavailable(_PROVIDER, "upstream answer was not JSON")
