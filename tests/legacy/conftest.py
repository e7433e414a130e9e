"""Fixtures for the legacy adapter: the overlay installed, the env guarded.

The simulated users and requests are in tests/support/legacy.py. Every test that touches
the overlay goes through `env_guard`, which fails the test unless `os.environ` (class,
Python dict and C environment) is exactly as it was before.
"""

import os
from collections.abc import Iterator

import pytest

from keyscope.app.legacy import overlay
from tests.support.legacy import OPERATOR_KEYS, InstallOverlay, c_getenv, current_source


def _environ_without_pytest() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)  # pytest rewrites it in every phase
    return env


@pytest.fixture
def env_guard() -> Iterator[None]:
    """Fail the test unless os.environ is left exactly as found (restoring it either way)."""
    assert type(os.environ) is os._Environ, "a previous test left the overlay installed"
    before = _environ_without_pytest()
    before_c = {name: c_getenv(name) for name in overlay.MANAGED_NAMES}
    yield
    leftover = overlay.uninstall()
    after = _environ_without_pytest()
    after_c = {name: c_getenv(name) for name in overlay.MANAGED_NAMES}
    for name in set(after) - set(before):
        del os.environ[name]
    for name, value in before.items():
        if after.get(name) != value:
            os.environ[name] = value
    assert not leftover, "the test left the overlay installed"
    assert after == before, "os.environ changed: " + ", ".join(
        sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
    )
    assert after_c == before_c, "the C environment changed"


@pytest.fixture
def operator_env(env_guard: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake operator (platform) keys in the real environment, as before install at start-up."""
    for name, value in OPERATOR_KEYS.items():
        monkeypatch.setenv(name, value)
    return OPERATOR_KEYS


@pytest.fixture
def install_overlay(operator_env: dict[str, str]) -> Iterator[InstallOverlay]:
    """Install the overlay (bound to `current_keys`) in any mode; uninstalled in teardown."""

    def install(
        mode: overlay.OutsideRequest = overlay.OutsideRequest.ABSENT, **kwargs: bool
    ) -> None:
        overlay.install(current_source, outside_request=mode, **kwargs)

    overlay.reset_counts()
    yield install
    overlay.uninstall()
    overlay.reset_counts()


@pytest.fixture
def installed(install_overlay: InstallOverlay) -> None:
    """The overlay in production mode: managed names absent outside requests."""
    install_overlay(overlay.OutsideRequest.ABSENT)


@pytest.fixture
def strict(install_overlay: InstallOverlay) -> None:
    """The overlay in strict mode: managed names raise outside requests."""
    install_overlay(overlay.OutsideRequest.RAISE)
