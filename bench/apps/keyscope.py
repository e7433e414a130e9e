"""Variants `keyscope-*`: the real app (`create_app(container)`) plus two bench routes.

Configured by the KEYSCOPE_* environment the harness sets: the database (SQLite or
PostgreSQL), the record cache (`KEYSCOPE_KEY_CACHE_TTL`: large = warm, 0 = one query per
request) and the legacy overlay (`KEYSCOPE_LEGACY_ENV=overlay`).

* `GET /v1/copilotkit/config`: the app's own route, unchanged (`CopilotKitDep`, no upstream
  call): the warm path the targets are about.
* `GET /bench/gemini`: the injected path, `GeminiDep`, as the real `/v1/gemini/generate`
  route takes it (a Gemini client built per request).
* `GET /bench/legacy`: legacy-style code that reads `os.getenv("GEMINI_API_KEY")` and builds
  the client from it; the principal comes from `PrincipalDep` (a legacy app's "current
  user"). It answers 503 when the overlay is not installed, rather than pretend.
"""

import inspect
import os
from typing import Any

from dependency_injector import providers as di
from fastapi import HTTPException, Request

from bench.apps.common import (
    Answer,
    CountRequestQueries,
    answer,
    count_queries,
    stats_router,
)
from keyscope.app.deps import GeminiDep, PrincipalDep
from keyscope.app.legacy import overlay
from keyscope.app.main import create_app
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers.gemini import GeminiClient

settings = Settings(_env_file=None)
container = Container(settings=di.Object(settings))
count_queries(container.engine())
app = create_app(container)
app.add_middleware(CountRequestQueries)


def _overlay_installed() -> bool:
    return overlay.is_installed()


def _extra() -> dict[str, Any]:
    return {
        "legacy_env": settings.legacy_env,
        "overlay_installed": _overlay_installed(),
        "key_cache_ttl": settings.key_cache_ttl,
        "database": container.engine().dialect.name,
    }


app.include_router(stats_router(_extra))


@app.get("/bench/gemini")
async def gemini(client: GeminiDep) -> Answer:
    # As /v1/gemini/generate takes it: the client alone. Whose request it was comes from the
    # principal the client's resolution already cached in this request (a plain value now).
    principal = container.principal()
    if inspect.isawaitable(principal):
        raise RuntimeError("the principal should be resolved before the client")
    return answer(principal.subject, client)


@app.get("/bench/legacy")
async def legacy(principal: PrincipalDep, request: Request) -> Answer:
    if not _overlay_installed():
        raise HTTPException(503, "the legacy overlay is not installed by create_app")
    key = os.getenv("GEMINI_API_KEY")
    http = request.app.state.container.http()
    client = GeminiClient(key, base_url=settings.gemini_base_url, http=http) if key else None
    return answer(principal.subject, client)


# The bench routes stay where an app's own routes land, after keyscope's: in front they would
# make `/v1/copilotkit/config` pay for passing them, and the two compared with each other
# (injected and legacy) sit side by side either way.
