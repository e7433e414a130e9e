"""Settings: production refuses missing or placeholder secrets; local mode generates them once."""

import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from keyscope.app.errors import ConfigurationError
from keyscope.app.local_dev import with_local_secrets
from keyscope.app.settings import Settings
from keyscope.providers import ProviderName
from tests.support.settings import JWT_SECRET, MASTER_KEY_K1


def _production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "deploy_env": "production",
        "master_keys": SecretStr(MASTER_KEY_K1),
        "jwt_secret": SecretStr(JWT_SECRET),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"master_keys": None}, "KEYSCOPE_MASTER_KEYS"),
        ({"master_keys": SecretStr("changeme")}, "KEYSCOPE_MASTER_KEYS"),
        ({"jwt_secret": None}, "KEYSCOPE_JWT_SECRET"),
        ({"jwt_secret": SecretStr("changethis")}, "KEYSCOPE_JWT_SECRET"),
        ({"jwt_secret": SecretStr("short")}, "KEYSCOPE_JWT_SECRET"),
        ({"platform_fallback": "gemini,openai"}, "KEYSCOPE_PLATFORM_FALLBACK"),
    ],
)
def test_production_refuses_with_one_line(overrides: dict[str, Any], names: str) -> None:
    """Each missing or placeholder secret fails with one line naming the setting."""
    with pytest.raises(ConfigurationError) as caught:
        _production(**overrides).check_production()
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_production_accepts_real_secrets() -> None:
    """Real values pass the check."""
    _production().check_production()
    _production(jwt_secret=None, jwt_jwks_url="https://id.example/jwks").check_production()


def test_deploy_env_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    """DEPLOY_ENV (the seed's name) is accepted as well as KEYSCOPE_DEPLOY_ENV."""
    monkeypatch.setenv("DEPLOY_ENV", "production")
    assert Settings(_env_file=None).is_production


def test_local_mode_generates_secrets_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Local mode writes a 0600 keyring and JWT secret once, warns loudly, then reuses them."""
    base = Settings(
        _env_file=None,
        deploy_env="local",
        var_dir=tmp_path,
        master_keys=None,
        jwt_secret=None,
        jwt_public_key=None,
        jwt_jwks_url=None,
    )
    with caplog.at_level(logging.WARNING):
        first = with_local_secrets(base)
    assert "LOCAL MODE" in caplog.text
    assert first.master_keys is not None
    assert first.jwt_secret is not None
    for name in ("dev-master-keys", "dev-jwt-secret"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert first.master_keys.get_secret_value() not in caplog.text
    caplog.clear()
    second = with_local_secrets(base)
    assert second.master_keys == first.master_keys
    assert second.jwt_secret == first.jwt_secret
    assert "LOCAL MODE" not in caplog.text


def test_production_never_generates(tmp_path: Path) -> None:
    """Production settings are returned untouched: no file is written."""
    settings = _production(var_dir=tmp_path, master_keys=None)
    assert with_local_secrets(settings) is settings
    assert list(tmp_path.iterdir()) == []


def test_platform_keys_prefer_gemini_name() -> None:
    """GEMINI_API_KEY wins over GOOGLE_API_KEY for the platform Gemini key."""
    settings = _production(gemini_api_key=SecretStr("g-key"), google_api_key=SecretStr("o-key"))
    assert settings.platform_keys()[ProviderName.GEMINI] == "g-key"
    assert "g-key" not in repr(settings)
