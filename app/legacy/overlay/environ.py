"""The per-request overlay on `os.environ` for legacy code that reads provider keys from the env.

Writing each user's keys into `os.environ` around every request (the design reproduced in
tests/legacy/seed_middleware.py) hands concurrent requests each other's keys and leaves keys
in the process environment afterwards (docs/legacy.md has the figures). This overlay never
writes a user's key anywhere:

* `install()` switches the class of the *existing* `os.environ` object to `_OverlayEnviron`,
  so `os.getenv`, `os.path.expandvars` and every alias taken earlier (`from os import
  environ`) see it. `uninstall()` switches it back.
* For the managed names (`MANAGED_NAMES`) every read asks `current_source()` for the
  running request's `KeySource`. Inside a request the name holds that user's key or is
  absent: never the operator's key, never the real environment's value.
* Outside a request the `OutsideRequest` mode decides: `absent` (production), `raise`
  (strict, for tests) or `passthrough` (CLIs: the real environment's value).
* In `absent` and `raise` modes, `install()` moves the managed names' real values out of
  the process environment (Python dict and C `environ`, so `os.environb`, C `getenv` and
  child processes cannot hand the operator's key to request code) into a private
  snapshot that `uninstall()` puts back. In `passthrough` mode they stay where they are.
* Every other name is untouched: reads and writes go to the real environment as usual.

Writes and deletes of a managed name:

* inside a request: a request-local layer, visible to every read of that request (its
  tasks and worker threads included) and to nothing else. It never reaches `putenv`, the
  real environment or another request, and it is dropped with the request's `KeySource`.
  A delete hides the user's key for the rest of the request.
* outside a request: `passthrough` → the real environment (as stock `os.environ`);
  `raise` → `ManagedNameOutsideRequest`; `absent` → the private snapshot, which
  `uninstall()` writes back (so start-up code such as `load_dotenv()` still works and a
  test's monkeypatch undo is honoured) but which no request ever reads.

The request-local layer is keyed by the identity of the `KeySource`: `current_source()`
must return the same object for the whole request (e.g. one cached in the request scope),
and that object must support weak references if legacy code writes managed names.

Coverage (each tested in tests/legacy): `os.getenv`, `os.environ[...]`, `.get`, `in`,
`.copy()`, `dict()`, iteration, `len`, `os.path.expandvars`, and pydantic-settings (it calls
`os.environ.items()` when a `BaseSettings` is *instantiated*, so build it in the request) see
the request's key, also across `asyncio.to_thread`, anyio's `run_sync` and `create_task`,
which copy the context. `loop.run_in_executor`, `ThreadPoolExecutor.submit` and
`threading.Thread` don't: there the name is absent (raises in strict mode); see `helpers`.
`os.environb`, C `getenv` and child processes see the process environment, which never holds
a user's key. Values cached beyond one request (`@lru_cache`, module-level settings or SDK
clients) are out of any overlay's reach: `keyscope.app.legacy.scan` lists them.

Installing twice is an error (`OverlayAlreadyInstalled`): a second call with another source
or mode would silently be ignored otherwise. `uninstall()` when not installed returns False.
"""

import os
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from sys import _getframe
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

from keyscope.app.legacy.overlay.callsites import CallSites
from keyscope.app.legacy.overlay.errors import (
    ManagedNameOutsideRequest,
    OverlayAlreadyInstalled,
    OverlayError,
)
from keyscope.app.legacy.overlay.request_state import RequestStates
from keyscope.providers import ProviderName

MANAGED_NAMES: Final[Mapping[str, ProviderName]] = MappingProxyType(
    {
        "GEMINI_API_KEY": ProviderName.GEMINI,
        "GOOGLE_API_KEY": ProviderName.GEMINI,
        "EXA_API_KEY": ProviderName.EXA,
        "COPILOTKIT_API_KEY": ProviderName.COPILOTKIT,
    }
)
# A plain dict: the cheapest lookup for the hot path, which asks it on every env access.
_PROVIDER_OF: Final[dict[str, ProviderName]] = dict(MANAGED_NAMES)
_REDACTED: Final = "<managed by keyscope: redacted>"

T = TypeVar("T")


class KeySource(Protocol):
    """The running request's keys; `secret_for` decrypts lazily, None = the user has none."""

    def secret_for(self, provider: ProviderName) -> str | None: ...


class OutsideRequest(StrEnum):
    """What a managed name is when no request is running."""

    ABSENT = "absent"
    RAISE = "raise"
    PASSTHROUGH = "passthrough"


@dataclass(slots=True)
class _Installed:
    """Everything one install() holds; uninstall() drops it whole."""

    current_source: Callable[[], KeySource | None]
    outside: OutsideRequest
    sites: CallSites | None  # None: call sites not counted (install(count_call_sites=False))
    requests: RequestStates = field(default_factory=RequestStates)
    # Real-environment values moved aside at install (absent/raise modes), restored at uninstall.
    hidden: dict[str, str] = field(default_factory=dict)


# os.environ is one per process, so is the overlay on it: `_state` is the installed overlay
# (None when not installed), read once per access by the overlay's methods. The call-site
# counts outlive an install, so that they can be read after the overlay is gone.
_state: _Installed | None = None
_call_sites = CallSites()
_install_lock = threading.Lock()


def read_counts() -> dict[str, int]:
    """Overlay reads of managed names so far, by `file:line` of the caller, sorted by site."""
    return _call_sites.lines()


def reset_counts() -> None:
    """Forget every count (e.g. after a deploy, or between tests)."""
    _call_sites.reset()


def live_request_states() -> int:
    """How many requests hold request-local state (env writes, SDK objects) right now."""
    state = _state
    return len(state.requests.entries) if state is not None else 0


def request_local(key: Hashable, create: Callable[[], T]) -> T | None:
    """The object stored under `key` for the running request (made by `create()` on first use).

    None outside a request or when the overlay is not installed. Used by helpers that must
    keep legacy SDK state per request (see `helpers.patch_genai_configure`).
    """
    state = _state
    source = state.current_source() if state is not None else None
    if state is None or source is None:
        return None
    local = state.requests.state_for(source, create=True)
    assert local is not None  # create=True always returns a state
    try:
        return local.objects[key]  # type: ignore[return-value]  # stored below, as a T
    except KeyError:
        pass
    # Made outside any lock (create() may itself read the env); if two threads of one request
    # race here, setdefault keeps the first object and both return it.
    return local.objects.setdefault(key, create())  # type: ignore[return-value]  # a T


# --- reads --------------------------------------------------------------------------------------


def _user_value(
    requests: RequestStates, source: KeySource, name: str, provider: ProviderName
) -> str | None:
    """The request's value for a managed name: its own writes first, then the user's key."""
    if requests.entries:  # empty unless some request wrote a managed name: skip the lookup
        local = requests.state_for(source, create=False)
        if local is not None and name in local.env:
            return local.env[name]
    return source.secret_for(provider)


def _outside_value(environ: "_OverlayEnviron", state: "_Installed | None", name: str) -> str | None:
    """A managed name's value when no request is running (or the overlay just went away)."""
    if state is None or state.outside is OutsideRequest.PASSTHROUGH:
        try:
            return environ.decodevalue(environ._data[environ.encodekey(name)])
        except KeyError:
            return None
    if state.outside is OutsideRequest.RAISE:
        raise ManagedNameOutsideRequest(name, "read")
    return None


class _OverlayEnviron(os._Environ[str]):
    """`os.environ` while the overlay is installed; adds no instance state (class swap only)."""

    # Set by os._Environ.__init__ (bytes -> bytes on POSIX); typeshed does not declare it.
    _data: dict[Any, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """Every read of a managed name ends here; this is also the path of every os.getenv().

        Kept in one function on purpose: a Python call would be a sizeable share of the read.
        """
        if key not in _PROVIDER_OF:  # `in`, not .get(): no method call on the unmanaged path
            try:
                return self.decodevalue(self._data[self.encodekey(key)])
            except KeyError:
                return default
        state = _state
        if state is None:  # uninstalled while this read was under way
            value = _outside_value(self, None, key)
            return default if value is None else value
        sites = state.sites
        if sites is not None:
            # The caller: the first frame that is not plumbing (os.getenv, our own methods,
            # _collections_abc, pydantic-settings...). See callsites.py.
            frame = _getframe(1)
            code = frame.f_code
            while True:
                plumbing = sites.plumbing.get(code.co_filename)
                if plumbing is None:
                    plumbing = sites.classify(code.co_filename)
                caller = frame.f_back
                if not plumbing or caller is None:
                    break
                frame, code = caller, caller.f_code
            site = (id(code), frame.f_lasti)  # O(1), unlike f_lineno: see callsites.py
            del frame, caller  # don't keep frame objects alive longer than needed
            counts = sites.counts
            count = counts.get(site)
            if count is None:
                sites.keep(code)
                count = 0
            counts[site] = count + 1
        source = state.current_source()
        if source is None:
            value = _outside_value(self, state, key)
        elif state.requests.entries:  # empty unless some request wrote a name or holds state
            value = _user_value(state.requests, source, key, _PROVIDER_OF[key])
        else:
            value = source.secret_for(_PROVIDER_OF[key])
        return default if value is None else value

    def __getitem__(self, key: str) -> str:
        if key not in _PROVIDER_OF:
            return super().__getitem__(key)
        value: str | None = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and key in _PROVIDER_OF:
            return self.get(key) is not None
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        state = _state
        source = state.current_source() if state is not None else None
        if state is None or (source is None and state.outside is OutsideRequest.PASSTHROUGH):
            yield from super().__iter__()
            return
        # Managed names found in the real dict (written behind the overlay's back, e.g. via
        # os.environb) never show: inside a request only the user's own values do.
        for encoded in list(self._data):
            name = self.decodekey(encoded)
            if name not in _PROVIDER_OF:
                yield name
        if source is not None:
            for name, provider in _PROVIDER_OF.items():
                if _user_value(state.requests, source, name, provider) is not None:
                    yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, key: str, value: str) -> None:
        if key not in _PROVIDER_OF:
            super().__setitem__(key, value)
            return
        self.encodevalue(value)  # the stock type check: str values only
        if "\0" in value:
            raise ValueError("embedded null byte")  # what putenv() would say
        _write(self, key, value)

    def __delitem__(self, key: str) -> None:
        if key not in _PROVIDER_OF:
            super().__delitem__(key)
            return
        _write(self, key, None)

    def setdefault(self, key: str, value: str) -> str:
        # Stock setdefault reads back with self[key], which is absent outside a request in
        # `absent` mode even right after the write (the write goes to the private snapshot).
        current: str | None = self.get(key)
        if current is not None:
            return current
        self[key] = value
        current = self.get(key)
        return value if current is None else current

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name!r}: {_REDACTED if name in _PROVIDER_OF else self._real(name)!r}"
            for name in self
        )
        return f"environ({{{shown}}})"

    def _real(self, name: str) -> str:
        return self.decodevalue(self._data[self.encodekey(name)])


def _write(environ: _OverlayEnviron, name: str, value: str | None) -> None:
    """Write (value) or delete (None) a managed name, per the rules in the module docstring."""
    action = "written" if value is not None else "deleted"
    state = _state
    source = state.current_source() if state is not None else None
    if state is not None and source is not None:
        requests = state.requests
        local = requests.state_for(source, create=True)
        assert local is not None  # create=True always returns a state
        if value is None and _user_value(requests, source, name, MANAGED_NAMES[name]) is None:
            raise KeyError(name)
        local.env[name] = value
    elif state is None or state.outside is OutsideRequest.PASSTHROUGH:
        if value is None:
            os._Environ.__delitem__(environ, name)
        else:
            os._Environ.__setitem__(environ, name, value)
    elif state.outside is OutsideRequest.RAISE:
        raise ManagedNameOutsideRequest(name, action)
    elif value is None:
        if state.hidden.pop(name, None) is None:
            raise KeyError(name)
    else:
        state.hidden[name] = value


# --- install / uninstall ------------------------------------------------------------------------


def install(
    current_source: Callable[[], KeySource | None],
    *,
    outside_request: OutsideRequest = OutsideRequest.ABSENT,
    count_call_sites: bool = True,
) -> None:
    """Put the overlay on `os.environ`; `current_source()` names the running request's keys.

    `count_call_sites` feeds `read_counts()`. It makes every managed read several times
    slower (the frame objects of the walk dominate; `python -m bench.micro` measures it), so
    switch it off once the call sites are known.

    Raises `OverlayAlreadyInstalled` if it is already installed, `OverlayError` if
    `os.environ` is not the stock object (someone else replaced or subclassed it).
    """
    global _state
    mode = OutsideRequest(outside_request)
    with _install_lock:
        if _state is not None:
            raise OverlayAlreadyInstalled(
                "the legacy env overlay is already installed; uninstall() it first"
            )
        environ = os.environ
        if type(environ) is not os._Environ:
            raise OverlayError(
                f"os.environ is a {type(environ).__qualname__}, not os._Environ: refusing to "
                "overlay an environment someone else has replaced"
            )
        state = _Installed(current_source, mode, _call_sites if count_call_sites else None)
        if mode is not OutsideRequest.PASSTHROUGH:
            for name in _PROVIDER_OF:
                value = environ.get(name)
                if value is not None:
                    state.hidden[name] = value
                    del environ[name]  # stock delete: unsetenv() + the Python dict
        _state = state
        _switch_class(environ, _OverlayEnviron)  # last: readers see the overlay once it's ready


def uninstall() -> bool:
    """Restore the stock `os.environ` class and the managed names' real values.

    Returns False (and does nothing) when the overlay is not installed. Request-local state
    is dropped. Values restored from the snapshot are re-inserted, so they may come later in
    iteration order than before; the values themselves are exactly the pre-install ones (or
    what code wrote outside requests while installed in `absent` mode).
    """
    global _state
    with _install_lock:
        state = _state
        if state is None:
            return False
        environ = os.environ
        if type(environ) is _OverlayEnviron:
            _switch_class(environ, os._Environ)
        _state = None
        for name, value in state.hidden.items():
            environ[name] = value  # the stock class again: putenv() + the Python dict
        state.requests.clear()
        return True


def _switch_class(environ: object, cls: type) -> None:
    # Same layout (a __dict__, no slots), so CPython allows the swap; identity is preserved,
    # which is what makes aliases taken before install() see the overlay.
    environ.__class__ = cls


def is_installed() -> bool:
    return _state is not None


__all__ = [
    "MANAGED_NAMES",
    "KeySource",
    "ManagedNameOutsideRequest",
    "OutsideRequest",
    "OverlayAlreadyInstalled",
    "OverlayError",
    "install",
    "is_installed",
    "live_request_states",
    "read_counts",
    "request_local",
    "reset_counts",
    "uninstall",
]
