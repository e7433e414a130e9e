"""Structural checks on a compact JWS that PyJWT does not make, done before it decodes.

Each closes a parser differential: a token that keyscope reads one way and another component
(a gateway, an audit log, a deny-list) reads another, or two strings that are one token.

* Every segment is canonical base64url: no padding, no characters outside the alphabet, no
  stray bits in the last character. PyJWT accepts `=` padding, so `sig` and `sig=` would be two
  strings for one token.
* Header and payload are JSON objects without duplicate names. Python's `json` keeps the last
  duplicate; other parsers keep the first, so `{"sub":"alice","sub":"bob"}` is alice to one of
  them and bob to us.
* ECDSA signatures are low-s. `(r, s)` and `(r, n - s)` are both valid signatures of the same
  message, and PyJWT (through `cryptography`) accepts both: the token is malleable. Signers
  that do not normalise to low-s (many do not) produce a high-s signature about half the time,
  so this one is a setting (`KEYSCOPE_JWT_REQUIRE_LOW_S`, on by default; see the README).
"""

import base64
import binascii
import json
import math
import re
from typing import Any

_B64URL = re.compile(r"[A-Za-z0-9_-]*")

# Curve orders (n) by JWS algorithm; a low-s signature has s <= n // 2.
_EC_ORDERS = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES256K": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "ES384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "ES512": int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}


class MalformedToken(ValueError):
    """The token is not in the one canonical shape keyscope accepts."""


def b64url_decode_canonical(segment: str) -> bytes:
    """Decode one segment, refusing anything but its canonical unpadded base64url form."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise MalformedToken("not canonical base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("not base64url") from None
    # Unused low bits in the last character must be zero, or two strings decode alike.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise MalformedToken("not canonical base64url")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise MalformedToken("duplicate JSON member names")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise MalformedToken(f"{name} is not JSON")  # Python's json reads NaN and Infinity


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "1e400" reads as infinity
        raise MalformedToken("number out of range")
    return value


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(
            raw,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MalformedToken("not JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken("not a JSON object")
    return value


def check_token_shape(token: str, *, require_low_s: bool = True) -> dict[str, Any]:
    """Check a compact JWS's structure; its header on success, MalformedToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken("not a compact JWS")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(b64url_decode_canonical(header_b64))
    _json_object(b64url_decode_canonical(payload_b64))
    signature = b64url_decode_canonical(signature_b64)
    order = _EC_ORDERS.get(str(header.get("alg")))
    if order is not None and require_low_s:
        half = len(signature) // 2
        if half == 0 or len(signature) % 2:
            raise MalformedToken("bad ECDSA signature length")
        s = int.from_bytes(signature[half:], "big")
        if s > order // 2:
            raise MalformedToken("ECDSA signature is not low-s")
    return header
