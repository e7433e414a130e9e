"""Read counters: which call sites (file:line) still read managed names through the overlay."""

import os

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyscope.app.legacy import overlay
from tests.support.legacy import InstallOverlay, in_request, keys_for


class ExaOnlySettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None)

    exa_api_key: str | None = None


def read_via_getenv() -> str | None:
    return os.getenv("GEMINI_API_KEY")


def read_via_mapping() -> bool:
    return "EXA_API_KEY" in os.environ and bool(os.environ["EXA_API_KEY"])


def build_settings() -> ExaOnlySettings:
    return ExaOnlySettings()


def site(function: object, offset: int = 1) -> str:
    """`file:line` of the line `offset` lines below `function`'s def."""
    code = function.__code__  # type: ignore[attr-defined]  # a plain function, by contract
    return f"{code.co_filename}:{code.co_firstlineno + offset}"


@pytest.mark.usefixtures("installed")
def test_counts_name_the_callers_line_not_the_plumbing() -> None:
    """Reads through os.getenv, [] / in, and BaseSettings count at the caller's own line."""
    with in_request(keys_for("alice")):
        for _ in range(3):
            read_via_getenv()
        read_via_mapping()
        build_settings()
    counts = overlay.read_counts()
    assert counts[site(read_via_getenv)] == 3
    assert counts[site(read_via_mapping)] == 2  # `in` and []
    assert counts[site(build_settings)] >= 1  # pydantic-settings' own frames are skipped
    assert not [s for s in counts if "/os.py" in s or "<frozen" in s or "pydantic" in s]


@pytest.mark.usefixtures("installed")
def test_outside_request_reads_count_and_unmanaged_reads_do_not() -> None:
    """Absent-mode reads outside requests are counted too; unmanaged names never are."""
    read_via_getenv()
    os.getenv("HOME")
    assert overlay.read_counts() == {site(read_via_getenv): 1}


@pytest.mark.usefixtures("installed")
def test_reset_counts_forgets_everything() -> None:
    """reset_counts() empties the table."""
    read_via_getenv()
    overlay.reset_counts()
    assert overlay.read_counts() == {}


def test_counting_can_be_switched_off(install_overlay: InstallOverlay) -> None:
    """install(count_call_sites=False) reads the same keys and counts nothing."""
    install_overlay(count_call_sites=False)
    with in_request(keys_for("alice")):
        assert read_via_getenv() is not None
    assert overlay.read_counts() == {}
