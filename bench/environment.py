"""Secrets and environment for bench servers: fixed fake values, production mode.

Nothing here is a real secret: the bench mints its own tokens and stores fake provider keys
in throw-away databases.
"""

import base64
import os

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789abcdef"
MASTER_KEYS = "bench1:" + base64.b64encode(bytes(range(32))).decode()
# The seed design's world: one Fernet key for every stored key.
FERNET_KEY = base64.urlsafe_b64encode(bytes(range(32, 64))).decode()
# An operator (platform) key in the servers' environment: a response carrying it is a leak.
OPERATOR_GEMINI_KEY = "AIza-bench-operator-platform-key-not-for-users"
# Never called: the bench endpoints build clients but make no upstream request.
GEMINI_BASE_URL = "http://127.0.0.1:9/"

_INHERITED_PREFIXES = ("KEYSCOPE_", "BENCH_")
_INHERITED_NAMES = frozenset(
    {
        "DEPLOY_ENV",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "EXA_API_KEY",
        "COPILOTKIT_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GEMINI_BASE_URL",
    }
)


def keyscope_settings_env(database_url: str, *, cache_ttl: float, legacy: bool) -> dict[str, str]:
    """KEYSCOPE_* variables for one keyscope variant."""
    return {
        "KEYSCOPE_DEPLOY_ENV": "production",
        "KEYSCOPE_DATABASE_URL": database_url,
        "KEYSCOPE_MASTER_KEYS": MASTER_KEYS,
        "KEYSCOPE_JWT_SECRET": JWT_SECRET,
        "KEYSCOPE_KEY_CACHE_TTL": f"{cache_ttl:g}",
        "KEYSCOPE_LEGACY_ENV": "overlay" if legacy else "off",
        "KEYSCOPE_GEMINI_BASE_URL": GEMINI_BASE_URL,
        "KEYSCOPE_COPILOTKIT_BASE_URL": GEMINI_BASE_URL,
        "KEYSCOPE_PLATFORM_FALLBACK": "",
    }


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The parent's environment without any keyscope or provider setting, plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES) and name not in _INHERITED_NAMES
    }
    env["GEMINI_API_KEY"] = OPERATOR_GEMINI_KEY
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env
