"""install/uninstall, the outside-request modes, and what writes of managed names do."""

import gc
import os

import pytest

from keyscope.app.legacy import overlay
from keyscope.providers import ProviderName
from tests.support.legacy import (
    OPERATOR_KEYS,
    USER_KEY_PREFIX,
    InstallOverlay,
    c_getenv,
    current_source,
    in_request,
    keys_for,
    python_environ_values,
    user_key,
)

Mode = overlay.OutsideRequest


def test_install_uninstall_toggles_class_and_restores_values(operator_env: dict[str, str]) -> None:
    """Repeated install/uninstall in every mode restores the stock class and every value."""
    before = dict(os.environ)
    for mode in [*Mode, *Mode]:
        overlay.install(current_source, outside_request=mode)
        assert overlay.is_installed()
        assert type(os.environ) is not os._Environ
        with in_request(keys_for("alice")):
            assert os.getenv("GEMINI_API_KEY") == user_key("alice", ProviderName.GEMINI)
        assert overlay.uninstall()
        assert not overlay.is_installed()
        assert type(os.environ) is os._Environ
        assert dict(os.environ) == before
        assert {n: c_getenv(n) for n in OPERATOR_KEYS} == operator_env


def test_install_twice_is_an_error(installed: None) -> None:
    """A second install() raises instead of silently ignoring another source or mode."""
    with pytest.raises(overlay.OverlayAlreadyInstalled):
        overlay.install(current_source)


def test_uninstall_when_not_installed_returns_false(env_guard: None) -> None:
    """uninstall() without an overlay is a harmless no-op that says so."""
    assert overlay.uninstall() is False


def test_install_refuses_a_replaced_environ(env_guard: None) -> None:
    """install() refuses when os.environ is not the stock class (someone else patched it)."""

    class Foreign(os._Environ[str]):
        pass

    os.environ.__class__ = Foreign
    try:
        with pytest.raises(overlay.OverlayError, match="Foreign"):
            overlay.install(current_source)
    finally:
        os.environ.__class__ = os._Environ
    assert not overlay.is_installed()


def test_absent_mode_hides_operator_keys_from_the_process_environment(installed: None) -> None:
    """Installed in production mode, the operator's keys leave the Python and C environment."""
    assert not set(OPERATOR_KEYS.values()) & set(python_environ_values())
    assert all(c_getenv(name) is None for name in OPERATOR_KEYS)
    assert os.environb.get(b"GEMINI_API_KEY") is None


def test_strict_mode_raises_outside_a_request_without_the_value(strict: None) -> None:
    """Strict mode: reading a managed name outside a request raises, naming only the variable."""
    for read in (
        lambda: os.getenv("GEMINI_API_KEY"),
        lambda: os.environ["EXA_API_KEY"],
        lambda: "COPILOTKIT_API_KEY" in os.environ,
    ):
        with pytest.raises(overlay.ManagedNameOutsideRequest) as caught:
            read()
        message = str(caught.value) + repr(caught.value)
        assert caught.value.name in message
        assert not any(value in message for value in OPERATOR_KEYS.values())
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
    with pytest.raises(overlay.ManagedNameOutsideRequest):
        os.environ["GEMINI_API_KEY"] = "x"
    assert "GEMINI_API_KEY" not in list(os.environ)  # enumeration omits, it doesn't raise
    assert os.getenv("HOME") is not None  # unmanaged names are not strict


def test_passthrough_mode_reads_the_real_env_outside_requests_only(
    install_overlay: InstallOverlay,
) -> None:
    """CLI mode: outside a request the real value; inside a request still only the user's."""
    install_overlay(Mode.PASSTHROUGH)
    assert os.getenv("GEMINI_API_KEY") == OPERATOR_KEYS["GEMINI_API_KEY"]
    with in_request(keys_for("alice", without=(ProviderName.EXA,))):
        assert os.getenv("EXA_API_KEY") is None
        assert not set(OPERATOR_KEYS.values()) & set(dict(os.environ).values())


def test_writes_inside_a_request_stay_in_that_request(installed: None) -> None:
    """A managed name written inside a request is that request's only: no env, no C, no peers."""
    alice, bob = keys_for("alice"), keys_for("bob")
    with in_request(alice):
        os.environ["GEMINI_API_KEY"] = f"{USER_KEY_PREFIX}alice-written"
        assert os.environ.setdefault("GEMINI_API_KEY", "other") == f"{USER_KEY_PREFIX}alice-written"
        assert os.getenv("GEMINI_API_KEY") == f"{USER_KEY_PREFIX}alice-written"
    with in_request(bob):
        assert os.getenv("GEMINI_API_KEY") == user_key("bob", ProviderName.GEMINI)
    assert os.getenv("GEMINI_API_KEY") is None
    assert c_getenv("GEMINI_API_KEY") is None
    assert not any(v.startswith(USER_KEY_PREFIX) for v in python_environ_values())
    with in_request(alice):  # the same request (source) still sees its write
        assert os.getenv("GEMINI_API_KEY") == f"{USER_KEY_PREFIX}alice-written"


def test_deletes_inside_a_request_hide_the_key_for_that_request(installed: None) -> None:
    """del / pop of a managed name hides it for the rest of that request only."""
    alice = keys_for("alice")
    with in_request(alice):
        del os.environ["GEMINI_API_KEY"]
        assert "GEMINI_API_KEY" not in os.environ
        with pytest.raises(KeyError):
            del os.environ["GEMINI_API_KEY"]
        assert os.environ.pop("EXA_API_KEY") == user_key("alice", ProviderName.EXA)
        assert os.getenv("EXA_API_KEY") is None
    with in_request(keys_for("bob")):
        assert os.getenv("GEMINI_API_KEY") == user_key("bob", ProviderName.GEMINI)


def test_request_state_dies_with_the_requests_source(installed: None) -> None:
    """A request's writes are dropped once its KeySource is gone: no growth, no id reuse."""
    for user in ("alice", "bob", "carol"):
        with in_request(keys_for(user)):
            os.environ["EXA_API_KEY"] = f"{USER_KEY_PREFIX}{user}-written"
            assert overlay.live_request_states() >= 1
    gc.collect()
    assert overlay.live_request_states() == 0
    with in_request(keys_for("dave", without=(ProviderName.EXA,))):
        assert os.getenv("EXA_API_KEY") is None


def test_writes_outside_requests_in_absent_mode_wait_for_uninstall(installed: None) -> None:
    """Outside requests (absent mode) writes go to the hidden snapshot, restored at uninstall."""
    os.environ["EXA_API_KEY"] = "operator-new-exa"
    assert os.getenv("EXA_API_KEY") is None
    assert c_getenv("EXA_API_KEY") is None
    with in_request(keys_for("alice", without=(ProviderName.EXA,))):
        assert os.getenv("EXA_API_KEY") is None
    overlay.uninstall()
    assert os.environ["EXA_API_KEY"] == "operator-new-exa"
    assert c_getenv("EXA_API_KEY") == "operator-new-exa"
    os.environ["EXA_API_KEY"] = OPERATOR_KEYS["EXA_API_KEY"]


def test_writes_need_a_weakrefable_source(operator_env: dict[str, str]) -> None:
    """Request-local state needs a weakref-able KeySource; the error says so, reads still work."""

    class SlotsOnly:
        __slots__ = ()

        def secret_for(self, provider: ProviderName) -> str | None:
            return f"{USER_KEY_PREFIX}{provider.value}"

    source = SlotsOnly()
    overlay.install(lambda: source)
    try:
        assert os.getenv("EXA_API_KEY") == f"{USER_KEY_PREFIX}exa"
        with pytest.raises(overlay.OverlayError, match="weak references"):
            os.environ["EXA_API_KEY"] = "x"
    finally:
        overlay.uninstall()
