"""JWKS against a real loopback endpoint: removed keys stop, new keys start, fetches bounded."""

import asyncio
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dependency_injector import providers as di
from sqlalchemy import Engine

from keyscope.app.main import create_app
from keyscope.app.testing import app_client
from keyscope.containers import Container
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio

REFRESH = 1.0
MIN_INTERVAL = 0.5
KEYS = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in "abc"}


class JwksServer:
    """Serves the currently published keys; counts fetches."""

    def __init__(self) -> None:
        self.published: set[str] = set()
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = owner.document()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    def document(self) -> bytes:
        keys = []
        for kid in sorted(self.published):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEYS[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return json.dumps({"keys": keys}).encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
async def jwks_client(
    jwks: JwksServer, clean_engine: Engine, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url,
        jwt_secret=None,
        jwt_jwks_url=jwks.url,
        jwt_jwks_refresh=REFRESH,
        jwt_jwks_min_interval=MIN_INTERVAL,
    )
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    async with app_client(app, "http://t") as client:
        yield client


def token(kid: str, sub: str = "alice", signer: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 600, "jti": secrets.token_hex(4)}
    return jwt.encode(claims, KEYS[signer or kid], algorithm="RS256", headers={"kid": kid})


async def status(client: httpx.AsyncClient, bearer: str) -> int:
    response = await client.get("/v1/keys", headers={"Authorization": f"Bearer {bearer}"})
    return response.status_code


async def test_removed_key_stops_after_one_refresh(
    jwks_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    """After the IdP drops a kid, new and already-seen tokens signed with it are 401 once
    one refresh interval has passed; the remaining key keeps working."""
    jwks.published = {"a", "b"}
    seen = token("a")
    assert await status(jwks_client, seen) == 200
    assert await status(jwks_client, token("b")) == 200
    jwks.published = {"b"}
    await anyio.sleep(REFRESH + 0.1)
    assert await status(jwks_client, token("a")) == 401
    assert await status(jwks_client, seen) == 401  # the verified-token cache forgot it too
    assert await status(jwks_client, token("b")) == 200


async def test_new_kid_accepted_within_the_bound(
    jwks_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    """A kid published after the last fetch verifies within min_fetch_interval."""
    jwks.published = {"a"}
    assert await status(jwks_client, token("a")) == 200
    jwks.published = {"a", "c"}
    started = time.monotonic()
    while await status(jwks_client, token("c")) != 200:
        assert time.monotonic() - started < MIN_INTERVAL + 1.0, "new kid not picked up in time"
        await anyio.sleep(0.05)
    assert time.monotonic() - started <= MIN_INTERVAL + 1.0


async def test_random_kids_cause_bounded_fetches(
    jwks_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    """200 tokens with made-up kids: all 401, and at most one fetch per min interval."""
    jwks.published = {"a"}
    assert await status(jwks_client, token("a")) == 200
    before, started = jwks.fetches, time.monotonic()
    for _ in range(200):
        forged = token(secrets.token_hex(8), signer="a")
        assert await status(jwks_client, forged) == 401
    elapsed = time.monotonic() - started
    assert jwks.fetches - before <= int(elapsed / MIN_INTERVAL) + 2
    assert await status(jwks_client, token("a")) == 200


async def test_unknown_kid_and_wrong_signer_are_401(
    jwks_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    """A published kid with another key's signature, and a token without kid, are 401."""
    jwks.published = {"a", "b"}
    assert await status(jwks_client, token("a", signer="b")) == 401
    now = int(time.time())
    no_kid = jwt.encode({"sub": "a", "exp": now + 60}, KEYS["a"], algorithm="RS256")
    assert await status(jwks_client, no_kid) == 401


async def test_fetch_needs_no_thread_of_the_default_pool(
    jwks_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    """With every thread of anyio's default pool taken (as `def` endpoints take them while
    they wait), a token whose key needs a fetch still verifies, and concurrent ones make one
    fetch between them."""
    jwks.published = {"a"}
    limiter = anyio.to_thread.current_default_thread_limiter()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    try:
        with anyio.fail_after(5):
            codes = await asyncio.gather(
                *(status(jwks_client, token("a", sub=f"u{i}")) for i in range(3))
            )
    finally:
        for holder in holders:
            limiter.release_on_behalf_of(holder)
    assert codes == [200, 200, 200]
    assert jwks.fetches == 1
