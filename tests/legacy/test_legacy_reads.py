"""Inside a request every way of reading the environment sees that user's keys, and only them."""

import os
from os import environ as environ_taken_before_install
from os import getenv as getenv_taken_before_install

import pytest
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyscope.providers import ProviderName
from tests.support.legacy import OPERATOR_KEYS, in_request, keys_for, user_key

pytestmark = pytest.mark.usefixtures("installed")

ALICE_GEMINI = user_key("alice", ProviderName.GEMINI)
ALICE_EXA = user_key("alice", ProviderName.EXA)
ALICE_COPILOTKIT = user_key("alice", ProviderName.COPILOTKIT)


class LegacySettings(BaseSettings):
    """Settings the way legacy services declare them: provider keys straight from the env."""

    model_config = SettingsConfigDict(env_file=None)

    gemini_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    exa_api_key: str | None = None
    copilotkit_api_key: str | None = None


def test_getenv_reads_the_users_key() -> None:
    """os.getenv of a managed name returns the requesting user's key."""
    with in_request(keys_for("alice")):
        assert os.getenv("GEMINI_API_KEY") == ALICE_GEMINI
        assert os.getenv("GOOGLE_API_KEY") == ALICE_GEMINI
        assert os.getenv("EXA_API_KEY") == ALICE_EXA
        assert os.getenv("COPILOTKIT_API_KEY") == ALICE_COPILOTKIT


def test_aliases_taken_before_install_see_the_overlay() -> None:
    """`from os import environ, getenv` done at import time still see the user's key."""
    with in_request(keys_for("alice")):
        assert environ_taken_before_install.get("EXA_API_KEY") == ALICE_EXA
        assert getenv_taken_before_install("GEMINI_API_KEY") == ALICE_GEMINI


def test_mapping_reads_see_the_users_key() -> None:
    """[], .get, `in`, .copy(), dict(), keys/items/values and len all show the user's keys."""
    with in_request(keys_for("alice", without=(ProviderName.COPILOTKIT,))):
        assert os.environ["EXA_API_KEY"] == ALICE_EXA
        assert os.environ.get("GEMINI_API_KEY") == ALICE_GEMINI
        assert "EXA_API_KEY" in os.environ
        assert "COPILOTKIT_API_KEY" not in os.environ
        for snapshot in (os.environ.copy(), dict(os.environ), dict(os.environ.items())):
            assert snapshot["GEMINI_API_KEY"] == ALICE_GEMINI
            assert "COPILOTKIT_API_KEY" not in snapshot
        assert "EXA_API_KEY" in list(os.environ)
        assert "EXA_API_KEY" in os.environ.keys()  # noqa: SIM118  # KeysView is what we test
        assert ALICE_EXA in os.environ.values()
        assert len(os.environ) == len(list(os.environ))
        assert os.environ["HOME"] == os.environ.get("HOME")  # unmanaged names untouched


def test_missing_user_key_is_absent_not_the_operators() -> None:
    """A user without a key sees the name absent, never the operator's key."""
    with in_request(keys_for("bob", without=(ProviderName.GEMINI, ProviderName.EXA))):
        assert os.getenv("GEMINI_API_KEY") is None
        assert os.getenv("EXA_API_KEY", "default") == "default"
        with pytest.raises(KeyError):
            os.environ["GEMINI_API_KEY"]
        assert not set(OPERATOR_KEYS.values()) & set(os.environ.values())


def test_expandvars_uses_the_users_key() -> None:
    """os.path.expandvars substitutes the user's key and leaves absent names as written."""
    with in_request(keys_for("alice", without=(ProviderName.EXA,))):
        expanded = os.path.expandvars("g=$GEMINI_API_KEY e=${EXA_API_KEY}")
    assert expanded == f"g={ALICE_GEMINI} e=${{EXA_API_KEY}}"


def test_pydantic_settings_built_in_the_request_read_the_users_key() -> None:
    """BaseSettings reads os.environ.items() when built: in a request, the user's keys."""
    with in_request(keys_for("alice", without=(ProviderName.COPILOTKIT,))):
        settings = LegacySettings()
    assert settings.gemini_api_key == ALICE_GEMINI
    assert settings.exa_api_key == ALICE_EXA
    assert settings.copilotkit_api_key is None  # absent for her, not the operator's


def test_outside_a_request_managed_names_are_absent() -> None:
    """In production mode, outside a request, managed names read as absent everywhere."""
    assert os.getenv("GEMINI_API_KEY") is None
    assert "EXA_API_KEY" not in os.environ
    assert not set(OPERATOR_KEYS) & set(os.environ)
    assert LegacySettings().gemini_api_key is None


def test_repr_never_shows_a_managed_value() -> None:
    """repr(os.environ) redacts managed names, so a debug print leaks no key."""
    with in_request(keys_for("alice")):
        shown = repr(os.environ) + str(os.environ)
    assert "GEMINI_API_KEY" in shown
    assert ALICE_GEMINI not in shown
    assert not any(value in shown for value in OPERATOR_KEYS.values())
