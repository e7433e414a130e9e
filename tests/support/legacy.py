"""The legacy tests' simulated users and requests, and probes of the real environment.

A simulated request is a context in which `current_keys` holds that user's `FakeKeys`: the
same shape as the real binding (a ContextVar set per request, read by `current_source`).
"""

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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


InstallOverlay = Callable[..., None]
