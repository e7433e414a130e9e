"""Lifecycle settings: the platform quota's syntax, and the metrics default per mode."""

import pytest

from keyscope.app.errors import ConfigurationError
from keyscope.app.settings import Settings
from keyscope.providers import ProviderName


def test_platform_quota_parses_provider_requests_per_day() -> None:
    """`gemini:100, exa:50` gives per-provider daily limits; empty means no quota."""
    settings = Settings(_env_file=None, platform_quota="gemini:100, exa:50")
    assert settings.platform_quota_limits() == {ProviderName.GEMINI: 100, ProviderName.EXA: 50}
    assert Settings(_env_file=None, platform_quota="").platform_quota_limits() == {}


@pytest.mark.parametrize("text", ["gemini", "gemini:lots", "openai:5", "exa:-1", "gemini:1,:2"])
def test_malformed_platform_quota_is_one_line_naming_the_setting(text: str) -> None:
    """A bad entry fails with a message naming KEYSCOPE_PLATFORM_QUOTA."""
    with pytest.raises(ConfigurationError, match="KEYSCOPE_PLATFORM_QUOTA"):
        Settings(_env_file=None, platform_quota=text).platform_quota_limits()


def test_metrics_default_on_locally_off_in_production() -> None:
    """KEYSCOPE_METRICS_ENABLED unset: on in local mode, off in production; explicit wins."""
    assert Settings(_env_file=None, deploy_env="local").metrics_on
    assert not Settings(_env_file=None, deploy_env="production").metrics_on
    assert Settings(_env_file=None, deploy_env="production", metrics_enabled=True).metrics_on
