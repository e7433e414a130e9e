"""What every variant's endpoint shares: the answer's shape and the server-side counters.

The endpoint answers `{"user": <who the request authenticated as>, "fp": <fingerprint of the
key its Gemini client holds>}`; the wrong-key check compares `fp` with that user's own key.
`/bench/stats` reports how many bench requests ran and how many SQL statements they caused.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine, event

from bench.fingerprint import fingerprint
from providers.gemini import GeminiClient

Answer = dict[str, str | None]


@dataclass
class Counters:
    requests: int = 0
    queries: int = 0


counters = Counters()


def key_held_by(client: GeminiClient) -> str | None:
    """The key the SDK client would put in `x-goog-api-key` (what would reach the upstream)."""
    return client._genai._api_client.api_key


def answer(user: str | None, client: GeminiClient | None) -> Answer:
    counters.requests += 1
    key = key_held_by(client) if client is not None else None
    return {"user": user, "fp": fingerprint(key) if key else None}


def count_queries(engine: Engine) -> None:
    """Count every SQL statement the engine sends (pool pre-pings are not statements)."""

    def before_cursor_execute(*_: Any) -> None:
        counters.queries += 1

    event.listen(engine, "before_cursor_execute", before_cursor_execute)


def stats_router(extra: Callable[[], dict[str, Any]] | None = None) -> APIRouter:
    router = APIRouter()

    @router.get("/bench/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": counters.requests,
            "queries": counters.queries,
            **(extra() if extra else {}),
        }

    return router
