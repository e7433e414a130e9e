"""Request scope: one `RequestScope` per HTTP request, opened by a pure ASGI middleware.

dependency-injector has no correct per-request lifetime (DESIGN.md §3): singletons leak
between users, context-local singletons leak when requests share a task (as httpx test
clients run them), and `Closing[...]` tears down before a streaming body is sent. So:

* `RequestScopeMiddleware` creates a fresh `RequestScope` for each request and holds it in a
  `ContextVar`. Worker threads of `def` endpoints copy the context and so see the same object;
  its values live in the object's dict, not in the variable, so they are shared, not copied.
* `RequestScoped` is a provider that caches its value in the current scope: computed at most
  once per request, lazily, under a lock; an async load is stored as one task that every
  consumer awaits. A value that is ready (a cache hit) is handed out plain, with no future
  and no event-loop iteration: measured, that halved keyscope's own cost per warm request.
* The scope closes after the whole response, streaming body and background tasks included.
  Outside a request the provider raises; jobs and tests open a scope with `request_scope()`.
"""

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from dependency_injector import providers as di
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyscope.app.errors import OutsideRequestScope

T = TypeVar("T")

_current: ContextVar["RequestScope | None"] = ContextVar("keyscope_request_scope", default=None)


class RequestScope:
    """Values computed for one request, and the request's headers."""

    __slots__ = ("_closed", "_headers", "_lock", "_response_headers", "_values")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._headers = dict(headers or {})
        self._values: dict[object, Any] = {}
        self._response_headers: dict[str, str] = {}
        # Re-entrant: resolving one scoped value may resolve another in the same thread.
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def from_asgi(cls, scope: Scope) -> "RequestScope":
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        return cls(headers)

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def bearer_token(self) -> str | None:
        scheme, _, token = (self.header("authorization") or "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def get_or_create(self, key: object, create: Any) -> Any:
        """The value cached under `key`, else `create()`'s, cached (awaitables as one task).

        A finished load is handed out as its plain value, so only the consumers that arrive
        while it runs await the task; the rest resolve without touching the event loop.
        """
        with self._lock:
            if self._closed:
                raise OutsideRequestScope("this request's scope has already closed")
            try:
                value = self._values[key]
            except KeyError:
                value = create()
                if inspect.isawaitable(value):
                    value = _as_task(value)
                self._values[key] = value
                return value
            if isinstance(value, asyncio.Future) and _succeeded(value):
                value = self._values[key] = value.result()
            return value

    def set_response_header(self, name: str, value: str) -> None:
        """Add (or replace) a header on this request's response, whichever route sends it."""
        with self._lock:
            self._response_headers[name.lower()] = value

    def with_response_headers(self, start: Message) -> Message:
        """`start` (an `http.response.start`) with the headers set through this scope."""
        with self._lock:
            extra = dict(self._response_headers)
        if not extra:
            return start
        kept = [
            (k, v) for k, v in start.get("headers", []) if k.decode("latin-1").lower() not in extra
        ]
        added = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        return {**start, "headers": kept + added}

    def provide(self, key: object, value: Any) -> None:
        """Seed a value (e.g. a job's principal) so the provider under `key` returns it."""
        with self._lock:
            self._values[key] = value

    def resolved(self, key: object) -> Any | None:
        """The value under `key` if it has been computed and finished, else None."""
        with self._lock:
            value = self._values.get(key)
        if isinstance(value, asyncio.Future):
            return value.result() if _succeeded(value) else None
        return value

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


def _succeeded(future: "asyncio.Future[Any]") -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _as_task(awaitable: Any) -> "asyncio.Future[Any]":
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise OutsideRequestScope(
            "async request-scoped values resolve on the event loop: inject them with the "
            "dependencies in app.deps instead of calling the container from a worker thread"
        ) from None
    future: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
    return future


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
    scope = RequestScope(headers)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        scope.close()
        _current.reset(token)


class RequestScopeMiddleware:
    """Pure ASGI: opens a scope per HTTP request, closes it after the response completes.

    Pure ASGI rather than BaseHTTPMiddleware, which costs ~160 µs of CPU per request (more than
    a whole bare request) and would close the scope before a streaming body is sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = RequestScope.from_asgi(scope)
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


class RequestScoped(di.Provider[Any]):
    """A provider whose value is created once per request scope and shared within it.

    Calling it returns the value itself when it is ready and a task while an async load runs
    (every consumer of that request shares the task); `awaited()` takes either.
    Overriding works as for any provider: override with another `RequestScoped` to keep the
    once-per-request behaviour, with `providers.Object`/`Factory` to drop it.
    """

    __slots__ = ("_factory",)

    def __init__(self, provides: Any, *args: Any, **kwargs: Any) -> None:
        self._factory = di.Factory(provides, *args, **kwargs)
        super().__init__()
        # Pass values through as they are (see `_create`): dependency-injector's async mode
        # would wrap a ready value in a future, and would stick after the first call.
        self.disable_async_mode()

    def __deepcopy__(self, memo: dict[Any, Any] | None = None) -> "RequestScoped":
        memo = {} if memo is None else memo
        copied = memo.get(id(self))
        if copied is not None:
            return copied  # type: ignore[no-any-return]  # memo values are untyped
        copied = self.__class__(
            self._factory.provides,
            *di.deepcopy(self._factory.args, memo),
            **di.deepcopy(self._factory.kwargs, memo),
        )
        if self.is_async_mode_enabled():
            copied.enable_async_mode()
        elif self.is_async_mode_disabled():
            copied.disable_async_mode()
        self._copy_overridings(copied, memo)
        return copied

    @property
    def related(self) -> Iterator[di.Provider[Any]]:
        yield self._factory
        yield from super().related

    def _provide(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return current_scope().get_or_create(self, lambda: self._create(args, kwargs))

    def _create(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the factory with its injections resolved; awaitable only if something is.

        dependency-injector's own async handling would wrap even a ready value in a future and
        gather it through the event loop (several loop iterations per request). Here a
        dependency that is ready (a cache hit) is passed as is and a plain result is stored
        as is; only a dependency or result that really waits makes this load a task.
        """
        factory = self._factory
        provides: Callable[..., Any] = factory.provides  # type: ignore[assignment]  # set in __init__
        call_args = [_injected(a) for a in factory.args]
        call_args.extend(args)
        call_kwargs = {name: _injected(v) for name, v in factory.kwargs.items()}
        call_kwargs.update(kwargs)
        if any(inspect.isawaitable(a) for a in (*call_args, *call_kwargs.values())):
            return _call_when_ready(provides, call_args, call_kwargs)
        return provides(*call_args, **call_kwargs)


class AwaitingFactory(di.Factory[Any]):
    """A `Factory` that always awaits what it is given and always returns an awaitable.

    Its dependencies may be request-scoped values, plain when ready and tasks while loading.
    dependency-injector decides a provider's async mode on its first call and keeps it, and
    a container instance's copies do not inherit a mode set on the class: a factory whose
    first call saw plain values would later pass a task through unawaited. Pinned here, in
    the constructor, so every copy is pinned too.
    """

    def __init__(self, provides: Any = None, *args: Any, **kwargs: Any) -> None:
        # `provides` may be None: dependency-injector copies a provider by creating an empty
        # one of the same class and filling it in.
        super().__init__(provides, *args, **kwargs)
        self.enable_async_mode()


def _injected(injection: Any) -> Any:
    return injection() if isinstance(injection, di.Provider) else injection


async def _call_when_ready(
    provides: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> Any:
    args = [await awaited(a) for a in args]
    kwargs = {name: await awaited(v) for name, v in kwargs.items()}
    return await awaited(provides(*args, **kwargs))


async def awaited(value: "T | Awaitable[T]") -> T:
    """`value`, awaited if it is awaitable: request-scoped providers return a plain value when
    it is ready (the fast path) and an awaitable when it is still loading.

    `keys = await awaited(container.user_keys())` works in either case."""
    if inspect.isawaitable(value):
        return await value
    return value
