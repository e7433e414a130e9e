"""What the overlay cannot reach by itself, made explicit.

The overlay finds the running request through `contextvars`. Code that hops threads without
copying the context (`loop.run_in_executor`, `ThreadPoolExecutor.submit`, `threading.Thread`)
runs "outside a request": managed names read as absent there. That is safe (no other user's
key, no operator key) but broken for legacy code that needs the key. The replacements below
carry the submitter's context across the hop.

Child processes and C code read the process environment, which never holds a user's key; a
child that needs one must be given an explicit `env=` (see `subprocess_env`).
"""

import asyncio
import contextvars
import functools
import importlib
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from keyscope.app.legacy.overlay.environ import is_installed, request_local
from keyscope.app.legacy.overlay.errors import OverlayError

P = ParamSpec("P")
T = TypeVar("T")


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in a copy of the *submitter's* context.

    A fresh copy per task (as `asyncio.to_thread` does), so tasks of different requests
    sharing the pool never see each other's context. `map()` goes through `submit()`.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()
        return super().submit(functools.partial(context.run, fn, *args, **kwargs))


class ContextThread(threading.Thread):
    """A Thread that runs `target` in a copy of the context of the caller of `start()`.

    Use `target=`; a subclass that overrides `run()` keeps the context only for code it
    reaches through `super().run()`.
    """

    _context: contextvars.Context | None = None  # set by start(); run() alone stays put

    def start(self) -> None:
        self._context = contextvars.copy_context()
        super().start()

    def run(self) -> None:
        if self._context is None:
            super().run()
        else:
            self._context.run(super().run)


def start_thread(
    target: Callable[..., object],
    *args: object,
    name: str | None = None,
    daemon: bool | None = None,
) -> ContextThread:
    """Start (and return) a `ContextThread` running `target(*args)` in the caller's context."""
    thread = ContextThread(target=target, args=args, name=name, daemon=daemon)
    thread.start()
    return thread


def run_in_executor(
    loop: asyncio.AbstractEventLoop,
    executor: Executor | None,
    fn: Callable[..., T],
    *args: object,
) -> "asyncio.Future[T]":
    """`loop.run_in_executor(executor, fn, *args)`, with `fn` run in a copy of this context."""
    context = contextvars.copy_context()
    return loop.run_in_executor(executor, functools.partial(context.run, fn, *args))


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An explicit `env=` for a child process: the real environment plus this request's keys.

    Inside a request (overlay installed) the managed names hold the requesting user's keys
    and nothing else; outside a request they follow the overlay's mode; without the overlay
    this is a plain copy of `os.environ`. `extra` is applied last.

    Opt in only for a child that needs the key: the key is then in the child's environment,
    readable by same-user processes (`/proc/<pid>/environ`), inherited by the child's own
    children, and often dumped by crash reporters. Prefer passing it on stdin or a flag the
    child reads from a file descriptor when the child is yours.
    """
    env = dict(os.environ)
    if extra:
        env.update(extra)
    return env


# --- google.generativeai.configure() ------------------------------------------------------------

_GENAI_CLIENT_MODULE = "google.generativeai.client"


class _PerRequestClientManager:
    """Stands in for `google.generativeai.client._client_manager`: one real manager per request.

    The deprecated SDK keeps its configuration (API key included) and its cached clients in
    that one process-global `_ClientManager`; `configure(api_key=...)` in one request rewires
    every other request. Its module-level `configure()` and `get_default_*_client()` look the
    global up at call time, so replacing it with this proxy makes them per request: inside a
    request every attribute is that request's own `_ClientManager` (created empty on first
    use: an unconfigured one configures itself from the env, i.e. from the overlay, i.e. from
    the user's key); outside a request it is the original, process-wide manager. A request
    never inherits a configuration made at start-up.
    """

    def __init__(self, process_manager: object) -> None:
        self._process_manager = process_manager
        self._manager_type: Callable[[], object] = type(process_manager)

    def _current(self) -> object:
        manager = request_local(self, self._manager_type)
        return self._process_manager if manager is None else manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)

    def __repr__(self) -> str:
        return f"<per-request genai client manager over {type(self._process_manager).__name__}>"


def patch_genai_configure() -> bool:
    """Make the deprecated `google.generativeai.configure()` per request, if the SDK is present.

    Returns False when `google.generativeai` is not importable (nothing to patch), True once
    patched (again: a no-op). Requires the overlay: requests are told apart by it.

    Not covered: a `GenerativeModel` kept beyond one request (module-level) keeps the client
    of the first request that used it, and `configure(http_proxy=...)` still sets process-wide
    proxy variables. `keyscope legacy scan` lists both.
    """
    if not is_installed():
        raise OverlayError(
            "install the legacy env overlay before patching google.generativeai: it is what "
            "tells one request from another"
        )
    try:
        client_module: Any = importlib.import_module(_GENAI_CLIENT_MODULE)
    except ImportError:
        return False
    current = client_module._client_manager
    if not isinstance(current, _PerRequestClientManager):
        client_module._client_manager = _PerRequestClientManager(current)
    return True


def unpatch_genai_configure() -> bool:
    """Undo `patch_genai_configure()`; False if it was not patched."""
    try:
        client_module: Any = importlib.import_module(_GENAI_CLIENT_MODULE)
    except ImportError:
        return False
    current = client_module._client_manager
    if not isinstance(current, _PerRequestClientManager):
        return False
    client_module._client_manager = current._process_manager
    return True


__all__ = [
    "ContextThread",
    "ContextThreadPoolExecutor",
    "patch_genai_configure",
    "run_in_executor",
    "start_thread",
    "subprocess_env",
    "unpatch_genai_configure",
]
