"""The fingerprint bench endpoints return for the key their client holds.

Keyed BLAKE2b over fake bench keys: cheap, identical in every variant, and what the
wrong-key check compares with each user's own key.
"""

import hashlib

_KEY = b"keyscope-bench-fingerprint"


def fingerprint(api_key: str) -> str:
    return hashlib.blake2b(api_key.encode(), digest_size=8, key=_KEY).hexdigest()
