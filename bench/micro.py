"""Step costs, in-process (timeit, best of 5): `python -m bench.micro` or part of `python -m bench`.

Each figure is one call of the step as keyscope runs it per request. Cold JWT verifies use a
fresh token per call (TokenVerifier caches verified tokens by their exact string); the
in-process resolution chain runs the container's real providers inside a request scope.
"""

import asyncio
import inspect
import itertools
import json
import os
import tempfile
import time
import timeit
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dependency_injector import providers as di
from google import genai
from pydantic import SecretStr
from sqlmodel import Session, create_engine, select

from bench.apps.seed_schema import SeedApiKey, fernet
from bench.databases import sqlite_database
from bench.environment import JWT_SECRET, MASTER_KEYS
from bench.seeding import BenchUser, make_users, seed_keyscope, seed_seed_design
from keyscope.app.keys.cache import RecordCache
from keyscope.app.legacy import overlay
from keyscope.app.scope import request_scope
from keyscope.app.security.envelope import EnvelopeCipher
from keyscope.app.security.keyring import Keyring
from keyscope.app.security.tokens import TokenVerifier, mint_token
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.gemini import GeminiClient
from keyscope.providers.http import SharedHttp

Result = dict[str, Any]
REPEAT = 5


def best_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.Timer(fn).repeat(repeat=REPEAT, number=number)) / number * 1e6


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (a verify with a local key) without a loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


def _verify_cold(verifier: TokenVerifier, tokens: Iterator[str]) -> Callable[[], object]:
    return lambda: run_sync(verifier.verify(next(tokens)))


def jwt_steps() -> list[Result]:
    results: list[Result] = []
    hs = TokenVerifier(algorithms=["HS256"], key=JWT_SECRET)
    fresh = iter([mint_token(JWT_SECRET, f"u{n}") for n in range(REPEAT * 2000)])
    results.append(
        _r(
            "TokenVerifier.verify HS256, cold",
            best_us(_verify_cold(hs, fresh), 2000),
            "fresh token per call: PyJWT decode + claim checks + cache insert",
        )
    )
    token = mint_token(JWT_SECRET, "cached-user")
    run_sync(hs.verify(token))
    results.append(
        _r(
            "TokenVerifier.verify HS256, cached",
            best_us(lambda: run_sync(hs.verify(token)), 20000),
            "same token again: the verified-token cache",
        )
    )
    results.append(
        _r(
            "jwt.decode HS256 (what the seed does)",
            best_us(lambda: jwt.decode(token, JWT_SECRET, algorithms=["HS256"]), 5000),
            "PyJWT alone",
        )
    )

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs = TokenVerifier(algorithms=["RS256"], key=public_pem)
    now = int(time.time())
    rs_tokens = iter(
        [
            jwt.encode({"sub": f"u{n}", "exp": now + 3600}, private, algorithm="RS256")
            for n in range(REPEAT * 300)
        ]
    )
    results.append(
        _r(
            "TokenVerifier.verify RS256, cold",
            best_us(_verify_cold(rs, rs_tokens), 300),
            "2048-bit key, PEM",
        )
    )
    rs_token = jwt.encode({"sub": "cached", "exp": now + 3600}, private, algorithm="RS256")
    run_sync(rs.verify(rs_token))
    results.append(
        _r(
            "TokenVerifier.verify RS256, cached",
            best_us(lambda: run_sync(rs.verify(rs_token)), 20000),
            "",
        )
    )
    return results


def key_steps(users: list[BenchUser]) -> list[Result]:
    cipher = EnvelopeCipher(Keyring.parse(MASTER_KEYS))
    user = users[0]
    sealed = cipher.seal(user.gemini_key, owner=user.user_id, provider="gemini")
    cache: RecordCache[object] = RecordCache(ttl_seconds=3600, max_users=10_000)
    for u in users:
        cache.fill(u.user_id, {}, cache.generation(u.user_id))
    ids = itertools.cycle([u.user_id for u in users])
    token = fernet.encrypt(user.gemini_key.encode())
    return [
        _r(
            "RecordCache.get, hit",
            best_us(lambda: cache.get(next(ids)), 50000),
            f"{len(users)} users cached, rotating",
        ),
        _r(
            "EnvelopeCipher.open (AES-256-GCM, 2 layers)",
            best_us(lambda: cipher.open(sealed, owner=user.user_id, provider="gemini"), 20000),
            "unwrap data key + open secret, associated data bound",
        ),
        _r(
            "Fernet decrypt (what the seed does)",
            best_us(lambda: fernet.decrypt(token), 20000),
            "per key; the seed decrypts 2 per request",
        ),
    ]


def client_steps() -> list[Result]:
    http = SharedHttp()
    results = [
        _r(
            "GeminiClient(key, http=SharedHttp) — target ≤ 200 µs",
            best_us(
                lambda: GeminiClient(
                    "AIza-micro-key-0123456789", base_url="http://127.0.0.1:9/", http=http
                ),
                2000,
            ),
            "per request, on the shared pools",
        ),
    ]
    started = time.perf_counter()
    for _ in range(3):
        genai.Client(api_key="AIza-micro-key-0123456789")
    naive = (time.perf_counter() - started) / 3 * 1e6
    results.append(
        _r(
            "genai.Client(api_key=...) naive",
            naive,
            "builds its own httpx clients + SSL context (mean of 3)",
        )
    )
    asyncio.run(http.aclose())
    return results


class _Source:
    """A KeySource that already holds the user's key (UserKeys' cost is measured separately)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def secret_for(self, provider: ProviderName) -> str | None:
        return self._key if provider is ProviderName.GEMINI else None


def overlay_steps() -> list[Result]:
    results = [
        _r(
            "os.getenv(unmanaged name), stock os.environ",
            best_us(lambda: os.getenv("HOME"), 200000),
            "no overlay installed",
        )
    ]
    bound: ContextVar[_Source | None] = ContextVar("bench_source", default=None)
    for counting in (False, True):
        overlay.install(bound.get, count_call_sites=counting)
        try:
            token = bound.set(_Source("AIza-user-key-0123456789"))
            try:
                results.append(
                    _r(
                        f"overlay: os.getenv(GEMINI_API_KEY) in a request, counting={counting}",
                        best_us(lambda: os.getenv("GEMINI_API_KEY"), 200000),
                        "the user's key via current_source().secret_for()",
                    )
                )
                if not counting:
                    results.append(
                        _r(
                            "overlay: os.getenv(unmanaged name)",
                            best_us(lambda: os.getenv("HOME"), 200000),
                            "the pass-through path",
                        )
                    )
            finally:
                bound.reset(token)
        finally:
            overlay.uninstall()
    return results


def database_steps(url: str, users: list[BenchUser]) -> list[Result]:
    settings = _settings(url, ttl=0)
    container = Container(settings=di.Object(settings))
    store = container.key_store()
    ids = itertools.cycle([u.user_id for u in users])
    engine = create_engine(url)

    def seed_lookup() -> object:
        with Session(engine) as session:
            rows = session.exec(select(SeedApiKey).where(SeedApiKey.user_id == next(ids))).all()
            return {row.provider: fernet.decrypt(row.encrypted_key) for row in rows}

    try:
        return [
            _r(
                "KeyStore._load: one Core select (SQLite)",
                best_us(lambda: store._load(next(ids)), 2000),
                "the cache-miss query, in its thread",
            ),
            _r(
                "seed: SQLModel session + select + 2 Fernet",
                best_us(seed_lookup, 1000),
                "the seed's per-request lookup",
            ),
        ]
    finally:
        engine.dispose()
        container.engine().dispose()


async def _chain_us(container: Container, headers: list[dict[str, str]], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        with request_scope(headers[i % len(headers)]):
            client = container.gemini_client()
            if inspect.isawaitable(client):
                await client
    return (time.perf_counter() - started) / n * 1e6


async def _best_chain_us(container: Container, headers: list[dict[str, str]]) -> float:
    await _chain_us(container, headers, len(headers))  # fills the token and record caches
    return min([await _chain_us(container, headers, 2000) for _ in range(REPEAT)])


def chain_steps(url: str, users: list[BenchUser]) -> list[Result]:
    """Scope + principal + UserKeys + GeminiClient through the real container, per request."""
    headers = [{"authorization": f"Bearer {u.token}"} for u in users]
    results = []
    for name, ttl in (("warm", 3600.0), ("miss (1 query, thread hop; wall time)", 0.0)):
        container = Container(settings=di.Object(_settings(url, ttl=ttl)))
        try:
            us = asyncio.run(_best_chain_us(container, headers))
        finally:
            container.engine().dispose()
        results.append(
            _r(
                f"container chain, {name}",
                us,
                "request_scope + principal + user_keys + gemini_client, asyncio loop",
            )
        )
    return results


def _settings(url: str, *, ttl: float) -> Settings:
    values: dict[str, Any] = {
        "deploy_env": "production",
        "database_url": url,
        "master_keys": SecretStr(MASTER_KEYS),
        "jwt_secret": SecretStr(JWT_SECRET),
        "key_cache_ttl": ttl,
        "gemini_base_url": "http://127.0.0.1:9/",
    }
    return Settings(_env_file=None, **values)


def _r(name: str, us: float, note: str) -> Result:
    return {"name": name, "us": us, "note": note}


def run_all() -> list[Result]:
    users = make_users(1000)
    results = jwt_steps() + key_steps(users) + client_steps() + overlay_steps()
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="keyscope-micro-"))
        url = stack.enter_context(sqlite_database(Path(tmp)))
        few = users[:200]
        seed_keyscope(url, few)
        seed_seed_design(url, few)
        results += database_steps(url, few) + chain_steps(url, few)
    return results


def main() -> None:
    results = run_all()
    width = max(len(r["name"]) for r in results)
    for r in results:
        print(f"{r['name']:<{width}}  {r['us']:>10.2f} µs  {r['note']}")
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / "micro.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
