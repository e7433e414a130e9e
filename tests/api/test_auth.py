"""Bearer-token verification: every bad token is the same 401, good ones of each kind pass."""

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dependency_injector import providers as di
from sqlalchemy import Engine

from keyscope.app.main import create_app
from keyscope.app.testing import app_client
from keyscope.containers import Container
from tests.support.settings import JWT_SECRET, make_settings

pytestmark = pytest.mark.anyio

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs(claims: dict[str, Any], secret: str = JWT_SECRET, **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def _none_token() -> str:
    def b64(data: dict[str, Any]) -> str:
        import base64

        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(_claims())}."


BAD_HS256_TOKENS: dict[str, Callable[[], str | None]] = {
    "missing": lambda: None,
    "malformed": lambda: "not.a.jwt",
    "garbage": lambda: "%%%%",
    "bad signature": lambda: _hs(_claims(), secret="another-secret-that-is-long-enough-000"),
    "expired": lambda: _hs(_claims(exp=int(time.time()) - 120)),
    "not yet valid": lambda: _hs(_claims(nbf=int(time.time()) + 600)),
    "alg none": _none_token,
    "missing sub": lambda: _hs(_claims(sub=None)),
    "empty sub": lambda: _hs(_claims(sub="")),
    "blank sub": lambda: _hs(_claims(sub="   ")),
    "numeric sub": lambda: _hs({**_claims(), "sub": 42}),
    "control char sub": lambda: _hs(_claims(sub="ali\nce")),
    "missing exp": lambda: _hs(_claims(exp=None)),
    "string exp": lambda: _hs({**_claims(), "exp": str(int(time.time()) + 600)}),
    "oversized": lambda: _hs(_claims(pad="x" * 9000)),
    "RS256 token when HS256 is pinned": lambda: jwt.encode(_claims(), RSA_KEY, algorithm="RS256"),
}


async def _assert_401(client: httpx.AsyncClient, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await client.get("/v1/keys", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["detail"] == "A valid bearer token is required."
    assert "Traceback" not in response.text
    if token:
        assert token not in response.text


@pytest.mark.parametrize("case", list(BAD_HS256_TOKENS))
async def test_bad_token_is_401(client: httpx.AsyncClient, case: str) -> None:
    """Each bad token gets the same short 401 with WWW-Authenticate and no detail."""
    await _assert_401(client, BAD_HS256_TOKENS[case]())


async def test_non_bearer_scheme_is_401(client: httpx.AsyncClient) -> None:
    """A Basic or tokenless Authorization header is rejected like a missing one."""
    for value in ("Basic YWxpY2U6cHc=", "Bearer", "Bearer    "):
        response = await client.get("/v1/keys", headers={"Authorization": value})
        assert response.status_code == 401


async def test_good_token_passes(client: httpx.AsyncClient) -> None:
    """A correctly signed HS256 token within its lifetime is accepted."""
    response = await client.get("/v1/keys", headers={"Authorization": f"Bearer {_hs(_claims())}"})
    assert response.status_code == 200


async def test_leeway_accepts_just_expired(client: httpx.AsyncClient) -> None:
    """A token expired 10 s ago passes within the default 30 s leeway."""
    token = _hs(_claims(exp=int(time.time()) - 10))
    response = await client.get("/v1/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@pytest.fixture
async def client_for(clean_engine: Engine, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Build a client whose app has the given settings overrides (lifespan entered)."""
    async with AsyncExitStack() as stack:

        async def build(**overrides: Any) -> httpx.AsyncClient:
            settings = make_settings(database_url, **overrides)
            container = Container(settings=di.Object(settings), engine=di.Object(clean_engine))
            return await stack.enter_async_context(app_client(create_app(container), "http://t"))

        yield build


async def test_audience_and_issuer_are_checked(client_for: Callable[..., Any]) -> None:
    """With audience and issuer configured, wrong or missing ones are 401 and right ones pass."""
    client = await client_for(jwt_audience="keyscope-api", jwt_issuer="https://id.example")
    good = _claims(aud="keyscope-api", iss="https://id.example")
    ok = await client.get("/v1/keys", headers={"Authorization": f"Bearer {_hs(good)}"})
    assert ok.status_code == 200
    for claims in (
        {**good, "aud": "someone-else"},
        {**good, "iss": "https://evil.example"},
        _claims(iss="https://id.example"),
        _claims(aud="keyscope-api"),
    ):
        await _assert_401(client, _hs(claims))


async def test_rs256_public_key_and_algorithm_confusion(client_for: Callable[..., Any]) -> None:
    """With a PEM public key, RS256 tokens pass; HS256 signed with the public key is refused."""
    client = await client_for(jwt_secret=None, jwt_public_key=RSA_PUBLIC_PEM)
    good = jwt.encode(_claims(), RSA_KEY, algorithm="RS256")
    ok = await client.get("/v1/keys", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200
    await _assert_401(client, jwt.encode(_claims(), OTHER_RSA_KEY, algorithm="RS256"))
    # The classic confusion attack: the public key used as an HMAC secret.
    confused = _forge_hs256_with(RSA_PUBLIC_PEM.encode())
    await _assert_401(client, confused)


def _forge_hs256_with(secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(_claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def jwks_url() -> Iterator[str]:
    """A real JWKS endpoint on loopback serving the RSA key under kid 'key-1'."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


async def test_jwks_verifies_by_kid(client_for: Callable[..., Any], jwks_url: str) -> None:
    """With a JWKS URL, a token whose kid is published passes; an unknown kid is 401."""
    client = await client_for(jwt_secret=None, jwt_jwks_url=jwks_url)
    good = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "key-1"})
    ok = await client.get("/v1/keys", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200
    await _assert_401(
        client, jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "nope"})
    )
    await _assert_401(client, _hs(_claims(), headers_kid="key-1"))
