"""The verified-token cache: bounded in size, by the token's expiry and by a ceiling."""

import time
from typing import Any

import jwt
import pytest

from keyscope.app.errors import InvalidToken
from keyscope.app.security import tokens
from keyscope.app.security.tokens import TokenVerifier, mint_token
from tests.support.settings import JWT_SECRET


class FakeClock:
    """Stands in for the `time` module inside keyscope.app.security.tokens only: real time
    plus an offset (PyJWT keeps checking `exp` against the real clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tokens, "time", fake)
    return fake


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the verifier actually decodes (a cache miss), in order."""
    seen: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return seen


def _verifier(leeway: int = 0) -> TokenVerifier:
    return TokenVerifier(algorithms=["HS256"], key=JWT_SECRET, leeway=leeway)


def test_a_verified_token_is_served_from_the_cache(decodes: list[str]) -> None:
    """The second verification of the same token decodes nothing."""
    verifier = _verifier()
    token = mint_token(JWT_SECRET, "alice")
    assert verifier.verify_now(token) == verifier.verify_now(token)
    assert decodes == [token]


def test_cache_holds_at_most_its_entry_limit(
    monkeypatch: pytest.MonkeyPatch, decodes: list[str]
) -> None:
    """Past the limit the oldest token is dropped: verifying it again decodes it again."""
    monkeypatch.setattr(tokens, "_CACHE_MAX_ENTRIES", 2)
    verifier = _verifier()
    first, second, third = (mint_token(JWT_SECRET, user) for user in ("a", "b", "c"))
    for token in (first, second, third):
        verifier.verify_now(token)
    verifier.verify_now(third)  # still cached
    verifier.verify_now(first)  # evicted: decoded again
    assert decodes == [first, second, third, first]


def test_cached_token_is_dropped_when_it_expires(clock: FakeClock, decodes: list[str]) -> None:
    """A cache entry lives no longer than the token's `exp` (plus the leeway)."""
    verifier = _verifier(leeway=5)
    token = mint_token(JWT_SECRET, "alice", ttl_seconds=60)
    verifier.verify_now(token)
    clock.offset = 60 + 4  # inside exp + leeway: still a hit
    verifier.verify_now(token)
    assert decodes == [token]
    clock.offset = 60 + 6  # past it: the cache no longer vouches for the token
    verifier.verify_now(token)  # PyJWT, on the real clock, still finds it valid
    assert decodes == [token, token]


def test_long_lived_token_is_reverified_after_the_ceiling(
    clock: FakeClock, decodes: list[str]
) -> None:
    """Even a day-long token is decoded again once the cache ceiling has passed."""
    verifier = _verifier()
    token = mint_token(JWT_SECRET, "alice", ttl_seconds=86_400)
    verifier.verify_now(token)
    clock.offset = tokens._CACHE_MAX_SECONDS - 1
    verifier.verify_now(token)
    assert decodes == [token]
    clock.offset = tokens._CACHE_MAX_SECONDS + 1
    verifier.verify_now(token)
    assert decodes == [token, token]


def test_expired_token_is_rejected_not_served_from_the_cache() -> None:
    """A token past `exp` fails even if it was verified (and cached) while valid."""
    verifier = _verifier()
    token = mint_token(JWT_SECRET, "alice", ttl_seconds=1)
    verifier.verify_now(token)
    time.sleep(2.1)
    with pytest.raises(InvalidToken):
        verifier.verify_now(token)
