"""Token policy: one canonical token string, no duplicate names, low-s ECDSA, bounded lifetime."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyscope.app.errors import InvalidToken, MissingToken
from keyscope.app.security.token_shape import MalformedToken, check_token_shape
from keyscope.app.security.tokens import TokenVerifier
from tests.support.settings import JWT_SECRET

pytestmark = pytest.mark.anyio

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC_PEM = (
    EC_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_hs256(header_json: str, payload_json: str, secret: str = JWT_SECRET) -> str:
    """An HS256 token from literal JSON text (so duplicate names survive)."""
    signing_input = f"{b64(header_json.encode())}.{b64(payload_json.encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iat": now, "exp": now + 600, **overrides}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), JWT_SECRET, algorithm="HS256")


def with_s(token: str, transform: Callable[[int], int]) -> str:
    """The ES256 token with its signature's s replaced by transform(s)."""
    head, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return f"{head}.{payload}.{b64(r + transform(s).to_bytes(32, 'big'))}"


def es256(**overrides: Any) -> str:
    """A validly signed ES256 token, normalised to low-s (as a careful signer produces)."""
    token = jwt.encode(claims(**overrides), EC_KEY, algorithm="ES256")
    return with_s(token, lambda s: s if s <= P256_N // 2 else P256_N - s)


NOW = int(time.time())
HEADER = '{"alg":"HS256","typ":"JWT"}'
FORGED: dict[str, Callable[[], str]] = {
    "duplicate sub": lambda: raw_hs256(HEADER, f'{{"sub":"alice","sub":"bob","exp":{NOW + 600}}}'),
    "duplicate exp": lambda: raw_hs256(
        HEADER, f'{{"sub":"a","exp":{NOW - 900},"exp":{NOW + 600}}}'
    ),
    "duplicate aud": lambda: raw_hs256(
        HEADER, f'{{"sub":"a","aud":"evil","aud":"keyscope","exp":{NOW + 600}}}'
    ),
    "duplicate alg in header": lambda: raw_hs256(
        '{"alg":"none","alg":"HS256"}', f'{{"sub":"a","exp":{NOW + 600}}}'
    ),
    "padded signature": lambda: hs256() + "=",
    "stray bits in the signature's last character": lambda: _stray_bits(hs256()),
    "padded payload": lambda: _pad_segment(hs256(), 1),
    "exp of 10^30": lambda: hs256(exp=10**30),
    "exp as infinity": lambda: raw_hs256(HEADER, '{"sub":"a","exp":1e400}'),
    "exp as NaN": lambda: raw_hs256(HEADER, '{"sub":"a","exp":NaN}'),
    "lifetime over the maximum": lambda: hs256(exp=NOW + 25 * 3600),
    "iat..exp over the maximum": lambda: hs256(iat=NOW - 48 * 3600, exp=NOW + 600),
    "iat as a string": lambda: hs256(iat=str(NOW)),
    "four segments": lambda: hs256() + ".x",
}


def _stray_bits(token: str) -> str:
    head, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    # 32 bytes fill 42 characters and 4 bits of the 43rd: its 2 low bits are unused.
    changed = alphabet[last ^ 0b01]
    forged = f"{head}.{payload}.{signature[:-1]}{changed}"
    assert base64.urlsafe_b64decode(forged.split(".")[2] + "=") == base64.urlsafe_b64decode(
        signature + "="
    )
    return forged


def _pad_segment(token: str, index: int) -> str:
    parts = token.split(".")
    parts[index] += "=" * (-len(parts[index]) % 4 or 4)
    return ".".join(parts)


@pytest.mark.parametrize("case", list(FORGED))
async def test_forged_shapes_are_the_same_401(client: httpx.AsyncClient, case: str) -> None:
    """Each validly signed but non-canonical or over-long token is the standard 401."""
    token = FORGED[case]()
    response = await client.get("/v1/keys", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {
        "type": "https://keyscope.dev/problems/invalid-token",
        "title": "Unauthorized",
        "status": 401,
        "detail": "A valid bearer token is required.",
    }


async def test_iat_is_optional_and_max_lifetime_passes(client: httpx.AsyncClient) -> None:
    """A token without iat, and one that lives exactly the maximum, are accepted."""
    no_iat = jwt.encode({"sub": "alice", "exp": NOW + 600}, JWT_SECRET, algorithm="HS256")
    full = hs256(iat=NOW, exp=NOW + 24 * 3600)
    for token in (no_iat, full):
        response = await client.get("/v1/keys", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, token


async def test_no_credentials_challenge_has_no_error_code(client: httpx.AsyncClient) -> None:
    """RFC 6750 3.1: without credentials the challenge is a bare `Bearer`; the body is the same."""
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer "}):
        response = await client.get("/v1/keys", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "A valid bearer token is required."
    bad = await client.get("/v1/keys", headers={"Authorization": "Bearer x.y.z"})
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_query_string_token_is_not_credentials(client: httpx.AsyncClient) -> None:
    """`?access_token=` is not a supported method: the request counts as unauthenticated."""
    response = await client.get("/v1/keys", params={"access_token": hs256()})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_es256_high_s_is_refused_low_s_accepted() -> None:
    """(r, s) low-s passes; the same token with (r, n - s) is refused, unless allowed."""
    verifier = TokenVerifier(algorithms=["ES256"], key=EC_PUBLIC_PEM)
    good = es256()
    assert verifier.verify_now(good) is not None
    high = with_s(good, lambda s: P256_N - s)
    # PyJWT alone accepts it: the check is ours.
    assert jwt.decode(high, EC_PUBLIC_PEM, algorithms=["ES256"])["sub"] == "alice"
    with pytest.raises(InvalidToken):
        verifier.verify_now(high)
    lenient = TokenVerifier(algorithms=["ES256"], key=EC_PUBLIC_PEM, require_low_s=False)
    assert lenient.verify_now(high) is not None


def test_missing_token_is_its_own_kind() -> None:
    """An absent token raises MissingToken (a bare challenge), an empty one too."""
    verifier = TokenVerifier(algorithms=["HS256"], key=JWT_SECRET)
    for token in (None, ""):
        with pytest.raises(MissingToken):
            verifier.verify_now(token)


def test_shape_check_rejects_noncanonical_segments() -> None:
    """Segments with padding, foreign characters or stray bits are refused; canonical pass."""
    token = hs256()
    assert check_token_shape(token)["alg"] == "HS256"
    head, payload, signature = token.split(".")
    for forged in (
        f"{head}=.{payload}.{signature}",
        f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}+",
        f"{head}.{payload}.{signature} ",
        f"{b64(json.dumps([1]).encode())}.{payload}.{signature}",
    ):
        with pytest.raises(MalformedToken):
            check_token_shape(forged)
