"""Test secrets and the settings builders every test area uses."""

import base64
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from keyscope.app.settings import Settings
from keyscope.providers.fakes import FakeUpstreams

JWT_SECRET = "test-jwt-secret-that-is-long-enough-0123456789"
MASTER_KEY_K1 = "k1:" + base64.b64encode(b"\x01" * 32).decode()
MASTER_KEY_K2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()

TokenFactory = Callable[..., str]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Production-mode settings with test secrets and no platform keys, whatever the env holds."""
    values: dict[str, Any] = {
        "deploy_env": "production",
        "database_url": database_url,
        "master_keys": SecretStr(MASTER_KEY_K1),
        "jwt_secret": SecretStr(JWT_SECRET),
        "gemini_api_key": None,
        "google_api_key": None,
        "exa_api_key": None,
        "copilotkit_api_key": None,
        "platform_fallback": "",
        "legacy_env": "off",
        # Off unless the upstreams are the loopback fakes (the `settings` fixture): a check
        # against the real providers would leave the machine.
        "key_validation": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def upstream_urls(fakes: FakeUpstreams) -> dict[str, Any]:
    """Settings overrides that point every provider at the loopback fakes."""
    return {
        "gemini_base_url": fakes.gemini_base_url,
        "exa_base_url": fakes.exa_base_url,
        "copilotkit_base_url": fakes.copilotkit_runtime_url,
    }
