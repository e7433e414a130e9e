"""Exa search as a thin client on the shared `httpx.AsyncClient`.

Not the `exa-py` SDK: it adds 38 MB (and `openai`), uses `requests` without pooling and raises
bare `ValueError`s. One endpoint needs a dozen lines of httpx.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from keyscope.providers import ProviderName
from keyscope.providers.errors import ProviderError, Unavailable, error_for_status
from keyscope.providers.http import (
    SharedHttp,
    deadline,
    error_for_transport,
    redact,
    require_header_safe_key,
    retry_after_seconds,
)

DEFAULT_BASE_URL = "https://api.exa.ai"

_PROVIDER = ProviderName.EXA


@dataclass(frozen=True, slots=True)
class ExaResult:
    """One search hit. Exa sends `title: null` for pages without one."""

    title: str | None
    url: str


class ExaClient:
    """The caller's Exa key, sent in `x-api-key` on the process's shared pool."""

    def __init__(self, api_key: str, *, base_url: str | None, http: SharedHttp) -> None:
        self._api_key = require_header_safe_key(_PROVIDER, api_key)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._http = http

    async def search(self, query: str, num_results: int) -> list[ExaResult]:
        """`POST /search`; results in Exa's order."""
        body = await self._post("/search", {"query": query, "numResults": num_results})
        results = body.get("results")
        if not isinstance(results, list):
            raise Unavailable(_PROVIDER, "answer has no results list")
        return [_result(item) for item in results if isinstance(item, dict) and item.get("url")]

    async def validate_key(self) -> None:
        """A one-result search: Exa has no free authenticated call, this is the cheapest."""
        await self.search("keyscope key check", 1)

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            async with deadline(_PROVIDER, self._http.deadline):
                response = await self._http.async_client.post(
                    self.base_url + path,
                    json=payload,
                    headers={"x-api-key": self._api_key, "accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise error_for_transport(_PROVIDER, exc) from None
        if not 200 <= response.status_code < 300:
            raise self._error_for(response)
        try:
            body = response.json()
        except ValueError:
            raise Unavailable(_PROVIDER, "upstream answer was not JSON") from None
        if not isinstance(body, dict):
            raise Unavailable(_PROVIDER, "upstream answer was not a JSON object")
        return body

    def _error_for(self, response: httpx.Response) -> ProviderError:
        return error_for_status(
            _PROVIDER,
            response.status_code,
            retry_after=retry_after_seconds(response.headers),
            upstream_detail=_error_message(response, self._api_key),
        )

    def __repr__(self) -> str:
        return f"ExaClient(base_url={self.base_url!r}, api_key=<redacted>)"


def _result(item: dict[str, Any]) -> ExaResult:
    title = item.get("title")
    return ExaResult(title=title if isinstance(title, str) else None, url=str(item["url"]))


def _error_message(response: httpx.Response, api_key: str) -> str | None:
    """Exa's `{"error": "..."}` text, redacted; None when the body says nothing usable."""
    try:
        body = response.json()
    except ValueError:
        return None
    message = body.get("error") if isinstance(body, dict) else None
    return redact(message, api_key) if isinstance(message, str) and message else None
