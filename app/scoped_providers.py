"""dependency-injector providers for the request path: `RequestScoped[T]` and `Built[T]`.

Both call their factory with its injections resolved and pass values through as they are:
a dependency that is ready (a cache hit) is handed over plain and a plain result is returned
plain; only a dependency or result that really waits makes the call an awaitable. That is
what `MaybeAwaitable[T]` names. dependency-injector's own async mode would wrap even a ready
value in a future and gather it through the event loop, and a provider's mode sticks after
its first call; these providers never enter it.

* `RequestScoped[T]`: the value is computed once per request scope (app/scope.py) and shared
  within it (the principal, the caller's `UserKeys`).
* `Built[T]`: a new value per injection (the provider clients, cheap on shared pools).

Called from a worker thread (dependency-injector's `@inject` in a `def` endpoint), both hand
out what is ready there and resolve what must wait on the request's event loop
(`scope.on_request_loop`), so no combination fails only when the cache happens to be cold.

Overriding works as for any provider: override a `RequestScoped` with another to keep the
once-per-request behaviour, with `providers.Object`/`Factory` to drop it.
"""

import asyncio
import inspect
from asyncio import _get_running_loop
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar, cast, overload

from dependency_injector import providers as di

from keyscope.app.awaitables import MaybeAwaitable, awaited
from keyscope.app.scope import current_scope, on_request_loop

T = TypeVar("T")


class _PassThrough(di.Provider[MaybeAwaitable[T]], Generic[T]):
    # The injections are kept as given: a request resolves them without going through the
    # Factory's accessors (each returns a fresh copy). They are fixed at construction; to
    # change them, override the provider. The Factory stays for copies and `related`.
    __slots__ = ("_args", "_factory", "_kwargs", "_provides")

    # Overloads: for an `async def` factory mypy cannot split `T | Awaitable[T]` by itself.
    @overload
    def __init__(
        self, provides: Callable[..., Awaitable[T]], *args: object, **kwargs: object
    ) -> None: ...

    @overload
    def __init__(
        self, provides: Callable[..., MaybeAwaitable[T]], *args: object, **kwargs: object
    ) -> None: ...

    def __init__(
        self, provides: Callable[..., MaybeAwaitable[T]], *args: object, **kwargs: object
    ) -> None:
        self._factory: di.Factory[MaybeAwaitable[T]] = di.Factory(provides, *args, **kwargs)
        self._provides = provides
        self._args = args
        self._kwargs = kwargs
        super().__init__()
        self.disable_async_mode()

    def __deepcopy__(self, memo: dict[Any, Any] | None = None) -> "_PassThrough[T]":
        # Any: dependency-injector's copy memo maps ids to arbitrary copies.
        memo = {} if memo is None else memo
        copied = memo.get(id(self))
        if copied is not None:
            return cast("_PassThrough[T]", copied)
        provides = cast("Callable[..., MaybeAwaitable[T]]", self._factory.provides)
        copied = self.__class__(
            provides,
            *di.deepcopy(self._factory.args, memo),
            **di.deepcopy(self._factory.kwargs, memo),
        )
        self._copy_overridings(copied, memo)
        return copied

    @property
    def related(self) -> Iterator[di.Provider[Any]]:  # Any: as the stub types `related`
        yield self._factory
        yield from super().related

    def _create(self, args: tuple[object, ...], kwargs: dict[str, object]) -> MaybeAwaitable[T]:
        """Call the factory with its injections resolved; awaitable only if something is."""
        # Written out rather than through helpers: this runs for every provider layer of every
        # request, and each Python call it saves is a measurable share of a warm request.
        provider = di.Provider
        call_args = [a() if isinstance(a, provider) else a for a in self._args]
        if args:
            call_args.extend(args)
        if self._kwargs or kwargs:
            call_kwargs = {
                n: v() if isinstance(v, provider) else v for n, v in self._kwargs.items()
            }
            call_kwargs.update(kwargs)
            if any(_awaitable(v) for v in call_kwargs.values()):
                return _call_when_ready(self._provides, call_args, call_kwargs)
        else:
            call_kwargs = {}
        for value in call_args:
            if hasattr(type(value), "__await__"):  # as `_awaitable`, inlined
                return _call_when_ready(self._provides, call_args, call_kwargs)
        return self._provides(*call_args, **call_kwargs)


class RequestScoped(_PassThrough[T]):
    """A provider whose value is created once per request scope and shared within it.

    Calling it returns the value itself when it is ready and a task while an async load runs
    (every consumer of that request shares the task); `awaited()` takes either.
    """

    __slots__ = ()

    def _provide(self, args: tuple[object, ...], kwargs: dict[str, object]) -> MaybeAwaitable[T]:
        scope = current_scope()
        if _get_running_loop() is not None:
            return scope.get_or_create(self, lambda: self._create(args, kwargs))
        # A worker thread (a `def` endpoint under @inject): a value that is ready, or whose
        # load needs no waiting, is served here; anything that waits is resolved on the loop.
        try:
            value = scope.get_or_create(self, lambda: _plain(self._create(args, kwargs)))
        except _MustWait:
            pass
        else:
            if not isinstance(value, asyncio.Future):
                return value
        return on_request_loop(lambda: self._provide(args, kwargs))


class Built(_PassThrough[T]):
    """A provider that builds a new value per call from (possibly request-scoped) parts."""

    __slots__ = ()

    def _provide(self, args: tuple[object, ...], kwargs: dict[str, object]) -> MaybeAwaitable[T]:
        value = self._create(args, kwargs)
        if _awaitable(value) and _get_running_loop() is None:
            # A worker thread (a `def` endpoint under @inject): build it on the request's loop.
            if inspect.iscoroutine(value):
                value.close()
            return on_request_loop(lambda: self._create(args, kwargs))
        return value


class _MustWait(Exception):
    """A load started in a worker thread turned out to need the event loop."""


def _plain(value: MaybeAwaitable[T]) -> T:
    if _awaitable(value):
        if inspect.iscoroutine(value):
            value.close()
        raise _MustWait
    return cast("T", value)


def _awaitable(value: object) -> bool:
    # What the request path produces is a coroutine, a task or a plain value: looking for
    # `__await__` on the type answers for all three without inspect's extra checks.
    return hasattr(type(value), "__await__")


async def _call_when_ready(
    provides: Callable[..., MaybeAwaitable[T]], args: list[object], kwargs: dict[str, object]
) -> T:
    ready_args = [await awaited(a) for a in args]
    ready_kwargs = {name: await awaited(v) for name, v in kwargs.items()}
    return await awaited(provides(*ready_args, **ready_kwargs))
