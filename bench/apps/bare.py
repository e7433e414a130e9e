"""Variants `bare` (the floor) and `bare-gemini`: FastAPI with a hard-coded key, nothing else.

No authentication, no database, no keyscope middleware: what an endpoint costs with nothing of
keyscope around it, served with the same uvicorn options as every variant.

* `GET /bench/config` (`bare`, the floor): returns a hard-coded key in the shape of
  `/v1/copilotkit/config`; nothing is built per request.
* `GET /bench/gemini` (`bare-gemini`, a second reference): builds a Gemini client on the
  shared pools from the hard-coded key, as keyscope's Gemini routes do per request.
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
HARD_CODED_PUBLIC_KEY = "ck_pub_bench-hard-coded-key-000000000000"

http = SharedHttp()
app = FastAPI(title="bench: bare")
app.include_router(stats_router())
app.add_middleware(CountRequestQueries)  # as in every variant: same cost


@app.get("/bench/config")
async def config() -> dict[str, str]:
    return {
        "public_api_key": HARD_CODED_PUBLIC_KEY,
        "runtime_url": "/v1/copilotkit/runtime",
        "key_origin": "user",
    }


@app.get("/bench/gemini")
async def gemini() -> Answer:
    return answer(None, GeminiClient(HARD_CODED_KEY, base_url=GEMINI_BASE_URL, http=http))


match_first(app, "/bench/config", "/bench/gemini")
