"""What every variant's endpoint shares: the answer's shape and the server-side counters.

The endpoint answers `{"user": <who the request authenticated as>, "fp": <fingerprint of the
key its Gemini client holds>}`; the wrong-key check compares `fp` with that user's own key.
`/bench/stats` reports which process answered (one of several under `--workers N`), how many
bench requests it ran, how many SQL statements it sent, and a histogram of statements per
bench request (counted in the request's own context, so
requests in flight when a period starts or ends cannot blur "exactly one query").
"""

import os
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine, event
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.fingerprint import fingerprint
from keyscope.providers.gemini import GeminiClient

Answer = dict[str, str | None]


@dataclass
class Counters:
    requests: int = 0
    queries: int = 0
    queries_per_request: Counter[int] = field(default_factory=Counter)
    # Statements by their first words (SQL text only: parameters are never looked at).
    statements: Counter[str] = field(default_factory=Counter)


counters = Counters()
# One cell per request, set by CountRequestQueries; worker threads copy the context, so a
# query run by `anyio.to_thread` lands in the cell of the request that caused it.
_request_queries: ContextVar[list[int] | None] = ContextVar("bench_queries", default=None)


class CountRequestQueries:
    """Pure ASGI: gives each HTTP request its own query counter, and counts the request
    (every path but `/bench/stats`) with the statements it sent once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/bench/stats":
            await self.app(scope, receive, send)
            return
        cell = [0]
        token = _request_queries.set(cell)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_queries.reset(token)
            counters.requests += 1
            counters.queries_per_request[cell[0]] += 1


def key_held_by(client: GeminiClient) -> str | None:
    """The key the SDK client would put in `x-goog-api-key` (what would reach the upstream)."""
    return client._genai._api_client.api_key


def answer(user: str | None, client: GeminiClient | None) -> Answer:
    key = key_held_by(client) if client is not None else None
    return {"user": user, "fp": fingerprint(key) if key else None}


def count_queries(engine: Engine) -> None:
    """Count every SQL statement the engine sends (pool pre-pings are not statements)."""

    def before_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        counters.queries += 1
        counters.statements[" ".join(statement.split())[:60]] += 1
        cell = _request_queries.get()
        if cell is not None:
            cell[0] += 1

    event.listen(engine, "before_cursor_execute", before_cursor_execute)


def stats_router(extra: Callable[[], dict[str, Any]] | None = None) -> APIRouter:
    router = APIRouter()

    @router.get("/bench/stats")
    async def stats() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "requests": counters.requests,
            "queries": counters.queries,
            "queries_per_request": {str(k): v for k, v in counters.queries_per_request.items()},
            "statements": dict(counters.statements.most_common(8)),
            **(extra() if extra else {}),
        }

    return router


def match_first(app: FastAPI, *paths: str) -> None:
    """Move the routes for `paths` to the front of the app's route table.

    Starlette matches routes in order, and each route passed costs a little (see
    docs/performance.md). The keyscope app has many more routes than bare. Measured in front
    in every variant, the endpoint under test pays for key resolution, not for where it
    happens to sit in one app's table (which a real app pays whatever it injects).
    """
    routes = app.router.routes
    picked = [r for r in routes if getattr(r, "path", None) in paths]
    for route in picked:
        routes.remove(route)
    routes[0:0] = picked
