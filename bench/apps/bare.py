"""Variant `bare` (the floor): FastAPI, a hard-coded key, the Gemini client on shared pools.

No authentication, no database, no middleware: what the endpoint costs with nothing of
keyscope around it.
"""

from fastapi import FastAPI

from bench.apps.common import (
    Answer,
    CountRequestQueries,
    answer,
    match_first,
    stats_router,
)
from bench.environment import GEMINI_BASE_URL
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

HARD_CODED_KEY = "AIza-bench-hard-coded-key-0000000000000"

http = SharedHttp()
app = FastAPI(title="bench: bare")
app.include_router(stats_router())
app.add_middleware(CountRequestQueries)  # as in every variant: same cost


@app.get("/bench/gemini")
async def gemini() -> Answer:
    return answer(None, GeminiClient(HARD_CODED_KEY, base_url=GEMINI_BASE_URL, http=http))


match_first(app, "/bench/gemini")
