"""The request lifetime: one `RequestScope` per HTTP request, opened by a pure ASGI middleware.

dependency-injector has no correct per-request lifetime: singletons leak between users,
context-local singletons leak when requests share a task (as httpx test clients run them), and
`Closing[...]` tears down before a streaming body is sent. So:

* `RequestScopeMiddleware` creates a fresh `RequestScope` for each request and holds it in a
  `ContextVar`. Worker threads of `def` endpoints copy the context and so see the same object;
  its values live in the object's dict, not in the variable, so they are shared, not copied.
* `get_or_create` computes a value at most once per scope, under a lock; an async load is
  stored as one task that every consumer awaits, and a finished one is handed out plain.
* The scope closes after the whole response, streaming body and background tasks included.
  Outside a request it raises; jobs and tests open a scope with `request_scope()`.

The dependency-injector providers that keep their values here are in app/scoped_providers.py.
dependency-injector's own `@inject` wiring calls them where the endpoint runs, which for a
`def` endpoint is a worker thread with no event loop: there, what is ready is handed out
plainly and what must still wait is resolved on the request's loop (`on_request_loop`).
"""

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import anyio
import anyio.from_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyscope.app.awaitables import MaybeAwaitable, awaited
from keyscope.app.errors import OffEventLoop, OutsideRequestScope

T = TypeVar("T")
RawHeaders = list[tuple[bytes, bytes]]

_MISSING = object()

_current: ContextVar["RequestScope | None"] = ContextVar("keyscope_request_scope", default=None)


class RequestScope:
    """Values computed for one request, the request's headers, and headers for its response."""

    __slots__ = ("_closed", "_headers", "_lock", "_response_headers", "_values", "container")

    def __init__(self, headers: RawHeaders | None = None, container: object = None) -> None:
        # The container of the app that opened the scope (set by integrate()'s middleware):
        # app.deps finds it here, so routes of a mounted sub-app resolve through it too.
        self.container = container
        # The ASGI header list as it came: most requests read one header (Authorization),
        # so nothing is decoded up front.
        self._headers: RawHeaders = headers if headers is not None else []
        self._values: dict[object, object] = {}
        self._response_headers: dict[bytes, bytes] = {}
        # Re-entrant: resolving one scoped value may resolve another in the same thread.
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def from_asgi(cls, scope: Scope, container: object = None) -> "RequestScope":
        return cls(scope["headers"], container)

    @classmethod
    def from_mapping(cls, headers: Mapping[str, str] | None) -> "RequestScope":
        raw = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        return cls(raw)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self._headers:
            if key == wanted:  # ASGI servers send header names in lower case
                return value.decode("latin-1")
        return None

    def bearer_token(self) -> str | None:
        scheme, _, token = (self.header("authorization") or "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def get_or_create(
        self, key: object, create: Callable[[], MaybeAwaitable[T]]
    ) -> MaybeAwaitable[T]:
        """The value cached under `key`, else `create()`'s, cached (awaitables as one task).

        A finished load is handed out as its plain value, so only the consumers that arrive
        while it runs await the task; the rest resolve without touching the event loop.
        """
        # A plain value already cached is returned without the lock (a dict read is atomic
        # under the GIL); `close()` swaps the dict out whole, so a read after close misses
        # here and raises below.
        value = self._values.get(key, _MISSING)
        if value is not _MISSING and not isinstance(value, asyncio.Future):
            return cast("MaybeAwaitable[T]", value)
        with self._lock:
            if self._closed:
                raise OutsideRequestScope("this request's scope has already closed")
            try:
                value = cast("MaybeAwaitable[T]", self._values[key])
            except KeyError:
                value = create()
                if hasattr(type(value), "__await__"):  # inspect.isawaitable, minus its extra checks
                    value = _as_task(value)
                self._values[key] = value
                return value
            if isinstance(value, asyncio.Future) and _succeeded(value):
                value = cast("T", value.result())
                self._values[key] = value
            return value

    def local(self, key: object, create: Callable[[], T]) -> T:
        """A plain (never awaitable) per-request value under `key`, created on first use."""
        value = self._values.get(key, _MISSING)  # lock-free hit, as in `get_or_create`
        if value is not _MISSING:
            return cast("T", value)
        with self._lock:
            if self._closed:
                raise OutsideRequestScope("this request's scope has already closed")
            try:
                return cast("T", self._values[key])
            except KeyError:
                value = self._values[key] = create()
                return value

    def provide(self, key: object, value: object) -> None:
        """Seed a value (e.g. a job's principal) so the provider under `key` returns it."""
        with self._lock:
            if self._closed:
                raise OutsideRequestScope("this request's scope has already closed")
            self._values[key] = value

    def set_response_header(self, name: bytes, value: bytes) -> None:
        """Add (or replace) a header on this request's response, whichever route sends it.

        Names are lower-case bytes, values latin-1 bytes: callers prebuild them once."""
        with self._lock:
            self._response_headers[name] = value

    def with_response_headers(self, start: Message) -> Message:
        """`start` (an `http.response.start`) with the headers set through this scope."""
        with self._lock:
            if not self._response_headers:
                return start
            extra = dict(self._response_headers)
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in extra]
        return {**start, "headers": kept + list(extra.items())}

    def close(self) -> None:
        """Drop every value; cancel loads nobody awaited (their errors are not 'unretrieved')."""
        with self._lock:
            self._closed = True
            values, self._values = self._values, {}
        for value in values.values():
            if isinstance(value, asyncio.Future):
                if value.done():
                    if not value.cancelled():
                        value.exception()
                else:
                    value.cancel()


def _succeeded(future: "asyncio.Future[object]") -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _as_task(awaitable: "MaybeAwaitable[T]") -> "asyncio.Future[T]":
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise OffEventLoop(
            "async request-scoped values resolve on the event loop: inject them with the "
            "dependencies in app/deps.py instead of calling the container from a worker thread"
        ) from None
    return asyncio.ensure_future(cast("asyncio.Future[T]", awaitable))


def current_scope() -> RequestScope:
    scope = _current.get()
    if scope is None:
        raise OutsideRequestScope(
            "no request scope is open: request-scoped values exist only inside a request, "
            "or inside `with request_scope(...)` in jobs and tests"
        )
    return scope


def current_scope_or_none() -> RequestScope | None:
    return _current.get()


def current_bearer_token() -> str | None:
    return current_scope().bearer_token()


@contextmanager
def request_scope(headers: Mapping[str, str] | None = None) -> Iterator[RequestScope]:
    """Open a scope explicitly, for background jobs, scripts and tests."""
    scope = RequestScope.from_mapping(headers)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        scope.close()
        _current.reset(token)


class RequestScopeMiddleware:
    """Pure ASGI: opens a scope per HTTP request, closes it after the response completes.

    Pure ASGI rather than BaseHTTPMiddleware, which runs every request through an extra task
    and memory streams (its cost is measured by the `seed` variant in docs/performance.md) and
    would close the scope before a streaming body is sent.

    When the legacy overlay is toggled on, it also refuses to let the app start (ASGI lifespan)
    or serve (every request) unless the overlay and its binding middleware are active: see
    app/legacy/wiring/guard.py. `container` is the app's; without one it is looked up in
    `app.state.container`, then the settings are read from the environment.
    """

    def __init__(self, app: ASGIApp, container: Any = None) -> None:
        self.app = app
        self.container = container
        self._legacy: bool | None = None  # overlay toggled on? (read once, lazily)
        self._binds_keys: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._checking_startup(scope, send))
                return
            await self.app(scope, receive, send)
            return
        if self._legacy is not False:
            problem = self._overlay_problem(scope)
            if problem is not None:
                await _refuse(problem, scope, receive, send)
                return
        request = RequestScope.from_asgi(scope, self._container(scope))
        token = _current.set(request)

        async def send_with_scope_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = request.with_response_headers(message)
            await send(message)

        try:
            await self.app(scope, receive, send_with_scope_headers)
        finally:
            request.close()
            _current.reset(token)

    def _container(self, scope: Scope) -> Any:
        if self.container is None:
            app = scope.get("app")
            state = getattr(app, "state", None)
            self.container = getattr(state, "container", None)
        return self.container

    def _overlay_problem(self, scope: Scope) -> str | None:
        from keyscope.app.legacy import overlay
        from keyscope.app.legacy.wiring import guard

        if self._legacy is None:
            self._legacy = guard.overlay_required(self._container(scope))
            if not self._legacy:
                return None
        if self._binds_keys is None:
            self._binds_keys = guard.binds_keys(self.app)
        if self._binds_keys and overlay.is_installed():
            return None
        return guard.overlay_problem(self.app)

    def _checking_startup(self, scope: Scope, send: Send) -> Send:
        async def checked(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    problem = self._overlay_problem(scope)
                except Exception as exc:  # configuration errors are start-up failures too
                    problem = f"{type(exc).__name__}: {exc}"
                if problem is not None:
                    message = {"type": "lifespan.startup.failed", "message": problem}
            await send(message)

        return checked


async def _refuse(problem: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Fail closed: a 500 problem for the caller (no detail), the reason in the log."""
    from keyscope.app.problems import problem as problem_response

    logging.getLogger("keyscope").error("request refused: %s", problem)
    response = problem_response(
        500,
        "legacy-overlay-inactive",
        "Legacy overlay inactive",
        "The service is misconfigured; the operator has been told why in the log.",
    )
    await response(scope, receive, send)


def on_request_loop(make: Callable[[], MaybeAwaitable[T]]) -> T:
    """`make()`'s value, awaited if need be, computed on the request's event loop.

    For a worker thread started by the request (a `def` endpoint or dependency, anyio's
    `to_thread`): anyio carries the thread's context (and so the request scope) to the loop.
    """

    async def resolve() -> T:
        return await awaited(make())

    try:
        return anyio.from_thread.run(resolve)
    except anyio.NoEventLoopError:
        raise OffEventLoop(
            "request-scoped values resolve on the request's event loop, and this thread is "
            "not one of the request's worker threads: inject them with the dependencies in "
            "keyscope.app.deps, or resolve them in the request and pass them on"
        ) from None
