"""Variant `seed` — THE BASELINE, not keyscope: the design keyscope replaces, reimplemented.

The per-request os.environ design (tests/legacy/seed_middleware.py is the same logic), done
the way it is usually written: a `BaseHTTPMiddleware` that decodes the JWT on every request,
fetches the user's keys with one SQL query (a SQLModel session), Fernet-decrypts them, writes
them into `os.environ`, awaits `call_next`, and restores the previous values in `finally`. The
endpoint reads `os.getenv("GEMINI_API_KEY")`. Under concurrency other requests overwrite the
process environment while this one is in flight: that is the leak the wrong-key check counts.

The one bench addition: the middleware records the user id in `request.state`, so the
endpoint can say whose request it served.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import jwt
from fastapi import FastAPI, Request, Response
from sqlmodel import Session, create_engine, select
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from bench.apps.common import (
    Answer,
    CountRequestQueries,
    answer,
    count_queries,
    match_first,
    stats_router,
)
from bench.apps.seed_schema import SeedApiKey, fernet
from bench.environment import GEMINI_BASE_URL, JWT_SECRET
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

DEPLOY_ENV = os.environ.get("DEPLOY_ENV", "production")
engine = create_engine(os.environ["BENCH_SEED_DATABASE_URL"])
count_queries(engine)
http = SharedHttp()


def extract_user_from_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else None


@contextmanager
def user_api_keys(user_id: str) -> Iterator[dict[str, str]]:
    """The user's keys, decrypted: one query on a new session (closed before the request runs)."""
    with Session(engine) as session:
        rows = session.exec(select(SeedApiKey).where(SeedApiKey.user_id == user_id)).all()
        keys = {row.provider: fernet.decrypt(row.encrypted_key).decode() for row in rows}
    yield keys


class APIKeyInjectionMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        user_id = extract_user_from_token(request)
        if not user_id or DEPLOY_ENV == "local":
            return await call_next(request)
        request.state.user_id = user_id  # bench addition (see module docstring)
        with user_api_keys(user_id) as user_keys:
            original_gemini = os.environ.get("GEMINI_API_KEY")
            original_exa = os.environ.get("EXA_API_KEY")
            os.environ["GEMINI_API_KEY"] = user_keys["gemini"]
            os.environ["EXA_API_KEY"] = user_keys["exa"]
            try:
                return await call_next(request)
            finally:
                if original_gemini is None:
                    del os.environ["GEMINI_API_KEY"]
                else:
                    os.environ["GEMINI_API_KEY"] = original_gemini
                if original_exa is None:
                    del os.environ["EXA_API_KEY"]
                else:
                    os.environ["EXA_API_KEY"] = original_exa


app = FastAPI(title="bench: seed design (baseline)")
app.include_router(stats_router())
app.add_middleware(APIKeyInjectionMiddleware)
app.add_middleware(CountRequestQueries)  # as in every variant (outermost: sees the seed's query)


@app.get("/bench/gemini")
async def gemini(request: Request) -> Answer:
    key = os.getenv("GEMINI_API_KEY")
    client = GeminiClient(key, base_url=GEMINI_BASE_URL, http=http) if key else None
    return answer(getattr(request.state, "user_id", None), client)


match_first(app, "/bench/gemini")
