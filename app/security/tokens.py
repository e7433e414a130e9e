"""Bearer-token verification with PyJWT.

Algorithms come from configuration, never from the token header; `exp` and `sub` are
required, `iat` is optional; audience and issuer are checked when configured. PyJWT alone would
accept a token without `exp`, a numeric-string `exp`, an `exp` centuries away, duplicate claim
names, a padded signature, a high-s ECDSA signature and megabyte claims, so size, shape
(app/security/token_shape.py) and claims are checked here before and after decoding; a token
may live at most `max_ttl` seconds. Verified tokens are cached by their exact string until they
expire (a signature check costs a sizeable share of a bare request: docs/performance.md).
"""

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

import jwt

from keyscope.app.errors import InvalidToken, MissingToken
from keyscope.app.security.jwks import JwksKeys, Lookup
from keyscope.app.security.token_shape import MalformedToken, check_token_shape

MAX_TOKEN_BYTES = 8 * 1024
MAX_SUBJECT_CHARS = 255
_SUBJECT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_CACHE_MAX_ENTRIES = 50_000
_CACHE_MAX_SECONDS = 300.0
DEFAULT_MAX_TTL = 24 * 3600


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: `subject` is the token's `sub`, the owner of stored keys."""

    subject: str
    expires_at: float


class TokenVerifier:
    """Verifies bearer tokens against one configured key source (secret, PEM or JWKS)."""

    def __init__(
        self,
        *,
        algorithms: list[str],
        key: str | bytes | None = None,
        jwks: JwksKeys | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: int = 30,
        max_ttl: int = DEFAULT_MAX_TTL,
        require_low_s: bool = True,
    ) -> None:
        if (key is None) == (jwks is None):
            raise ValueError("give exactly one of key or jwks")
        if not algorithms or "none" in {a.lower() for a in algorithms}:
            raise ValueError("algorithms must be pinned and must not include 'none'")
        self._algorithms = algorithms
        self._key = key
        self._jwks = jwks
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._max_ttl = max_ttl
        self._require_low_s = require_low_s
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_lock = Lock()

    async def verify(self, token: str | None) -> Principal:
        """The principal the token names, or InvalidToken (one message for every cause)."""
        principal = self.verify_now(token)
        if principal is not None:
            return principal
        assert token is not None  # verify_now() handled the rest
        assert self._jwks is not None
        kid = _kid(check_token_shape(token, require_low_s=self._require_low_s))
        key = await self._jwks.key(kid)  # an async fetch when needed (app/security/jwks.py)
        if key is None:
            raise InvalidToken
        principal = self._decode(token, key)
        self._remember(token, principal)
        return principal

    def verify_now(self, token: str | None) -> Principal | None:
        """`verify()` without waiting: the principal, or InvalidToken; None only when the
        signing key must come from the JWKS endpoint (a network call: use `verify()`).

        CPU only (short for a token not seen before, a dict lookup once cached), so it may
        run on the event loop."""
        if not token:
            raise MissingToken
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken
        cached = self._cached(token)
        if cached is not None:
            return cached
        try:
            header = check_token_shape(token, require_low_s=self._require_low_s)
        except MalformedToken:
            raise InvalidToken from None
        key: Any = self._key
        if self._jwks is not None:
            key = self._jwks.key_now(_kid(header))
            if key is Lookup.FETCH:
                return None
            if key is Lookup.UNKNOWN:
                raise InvalidToken
        principal = self._decode(token, key)
        self._remember(token, principal)
        return principal

    def _decode(self, token: str, key: Any) -> Principal:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            raise InvalidToken from None
        subject, expires = claims.get("sub"), claims.get("exp")
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidToken
        if len(subject) > MAX_SUBJECT_CHARS or _SUBJECT_FORBIDDEN.search(subject):
            raise InvalidToken
        # PyJWT accepts "exp": "1700000000"; a string here means a sloppy or forged issuer.
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise InvalidToken
        # A token that never expires is a stolen token that never expires.
        if expires > time.time() + self._max_ttl + self._leeway:
            raise InvalidToken
        issued = claims.get("iat")
        if issued is not None and (not _is_number(issued) or expires - issued > self._max_ttl):
            raise InvalidToken
        return Principal(subject=subject, expires_at=float(expires))

    def _cached(self, token: str) -> Principal | None:
        with self._cache_lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            principal, valid_until = entry
            if valid_until < time.time():
                del self._cache[token]
                return None
            return principal

    def _remember(self, token: str, principal: Principal) -> None:
        # Bounded twice: by the token's own expiry and by a ceiling, so a key change at the
        # identity provider is picked up within minutes even for long-lived tokens.
        ceiling = _CACHE_MAX_SECONDS
        if self._jwks is not None:  # no longer than the key set that verified it is current
            ceiling = min(ceiling, self._jwks.seconds_fresh())
        valid_until = min(principal.expires_at + self._leeway, time.time() + ceiling)
        with self._cache_lock:
            self._cache[token] = (principal, valid_until)
            while len(self._cache) > _CACHE_MAX_ENTRIES:
                self._cache.popitem(last=False)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _kid(header: dict[str, Any]) -> str:
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise InvalidToken
    return kid


def mint_token(
    secret: str,
    subject: str,
    *,
    ttl_seconds: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for development and tests (`keyscope token SUB`)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
