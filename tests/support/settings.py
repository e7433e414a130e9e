"""Test secrets and the settings builder every test area uses (the testing kit's, with fixed
secrets)."""

import base64
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from keyscope.app.settings import Settings
from keyscope.app.testing import make_test_settings, upstream_settings
from keyscope.providers.fakes import FakeUpstreams

JWT_SECRET = "test-jwt-secret-that-is-long-enough-0123456789"
MASTER_KEY_K1 = "k1:" + base64.b64encode(b"\x01" * 32).decode()
MASTER_KEY_K2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()

TokenFactory = Callable[..., str]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """The testing kit's settings (production mode, no platform keys, whatever the env holds)
    with this suite's fixed secrets, which tokens and ciphertexts across processes share."""
    values: dict[str, Any] = {
        "master_keys": SecretStr(MASTER_KEY_K1),
        "jwt_secret": SecretStr(JWT_SECRET),
        **overrides,
    }
    return make_test_settings(database_url, **values)


def upstream_urls(fakes: FakeUpstreams) -> dict[str, Any]:
    """Settings overrides that point every provider at the loopback fakes."""
    return dict(upstream_settings(fakes))
