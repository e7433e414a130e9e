"""Fixtures for the legacy adapter: simulated users, the overlay installed, the env guarded.

A simulated request is a context in which `current_keys` holds that user's `FakeKeys`: the
same shape as the real binding (a ContextVar set per request, read by `current_source`).
Every test that touches the overlay goes through `env_guard`, which fails the test unless
`os.environ` (class, Python dict and C environment) is exactly as it was before.
"""

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pytest

from keyscope.app.legacy import overlay
from keyscope.providers import ProviderName

OPERATOR_KEYS = {name: f"operator-{name.lower()}-0000" for name in overlay.MANAGED_NAMES}
USER_KEY_PREFIX = "user-key-"

current_keys: ContextVar["FakeKeys | None"] = ContextVar("legacy_test_keys", default=None)


class FakeKeys:
    """One user's keys as the overlay sees them (weakref-able, like the real binding's)."""

    __slots__ = ("__weakref__", "keys", "user")

    def __init__(self, user: str, keys: dict[ProviderName, str]) -> None:
        self.user = user
        self.keys = keys

    def secret_for(self, provider: ProviderName) -> str | None:
        return self.keys.get(provider)

    def __repr__(self) -> str:
        return f"FakeKeys({self.user!r})"


def user_key(user: str, provider: ProviderName) -> str:
    return f"{USER_KEY_PREFIX}{user}-{provider.value}"


def keys_for(user: str, *, without: tuple[ProviderName, ...] = ()) -> FakeKeys:
    """`user`'s keys for every provider except `without`."""
    return FakeKeys(user, {p: user_key(user, p) for p in ProviderName if p not in without})


def current_source() -> FakeKeys | None:
    return current_keys.get()


@contextmanager
def in_request(keys: FakeKeys) -> Iterator[FakeKeys]:
    """Run the block as `keys.user`'s request (in the current context)."""
    token = current_keys.set(keys)
    try:
        yield keys
    finally:
        current_keys.reset(token)


def c_getenv(name: str) -> str | None:
    """What C code (and so a child process's start-up) sees: libc getenv()."""
    value = _libc.getenv(name.encode())
    return value.decode() if value is not None else None


def c_environ() -> list[str]:
    """Every entry of the C-level `environ` array."""
    entries: list[str] = []
    array = ctypes.POINTER(ctypes.c_char_p).in_dll(_libc, "environ")
    index = 0
    while (entry := array[index]) is not None:
        entries.append(entry.decode(errors="replace"))
        index += 1
    return entries


def python_environ_values() -> list[str]:
    """The values in os.environ's own dict, bypassing any overlay."""
    data: dict[bytes, bytes] = vars(os.environ)["_data"]
    return [value.decode(errors="replace") for value in data.values()]


_libc = ctypes.CDLL(None)
_libc.getenv.restype = ctypes.c_char_p
_libc.getenv.argtypes = [ctypes.c_char_p]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the tests use asyncio.create_task / to_thread directly


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


InstallOverlay = Callable[..., None]


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
