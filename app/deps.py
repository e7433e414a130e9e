"""The one place FastAPI meets the container: `Annotated` aliases for endpoints.

Each alias is one FastAPI dependency that resolves one provider of the container
`integrate()` put in the request scope (else `app.state.container`) and awaits it only while
it is still loading. Compared with dependency-injector's `Depends(Provide[...])` + `@inject`
wiring (which works too: README "Two wiring styles") this needs no process-global wiring
(every app and test has its own container), no thread-pool hop per dependency (the stock
`Provide` marker's `__call__` is sync, so FastAPI runs it in the thread pool; see
docs/integration.md), and `def` endpoints receive values already resolved on the event loop.

The helpers are typed end to end: `request_dependency(lambda c: c.gemini_client)` is a
dependency returning `GeminiClient`, checked by mypy against the provider's declared type.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar, cast

from dependency_injector import providers as di
from fastapi import Depends, Request
from sqlalchemy import Engine

from keyscope.app.awaitables import MaybeAwaitable
from keyscope.app.keys.events import EventLog
from keyscope.app.keys.store import KeyStore
from keyscope.app.keys.usage import UsageTracker
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.keys.validation import KeyValidator
from keyscope.app.metrics import Metrics
from keyscope.app.scope import current_scope_or_none
from keyscope.app.security.tokens import Principal
from keyscope.app.settings import Settings
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient

if TYPE_CHECKING:
    from keyscope.containers import Container

T = TypeVar("T")
Dependency = Callable[[Request], Awaitable[T]]


def request_dependency(
    select: Callable[["Container"], di.Provider[MaybeAwaitable[T]]],
) -> Dependency[T]:
    """A FastAPI dependency resolving a request-path provider (`RequestScoped`, `Built`)."""

    async def resolve(request: Request) -> T:
        value = select(container_of(request))()
        # Still loading? A ready value is used as it is. The type-level check answers for
        # coroutines, tasks and plain values, cheaper than inspect.isawaitable.
        if hasattr(type(value), "__await__"):
            return await cast("Awaitable[T]", value)
        return cast("T", value)

    return resolve


def container_of(request: Request) -> "Container":
    """The request's container: the one its scope was opened with (so routes of a sub-app
    mounted inside an integrated app find it), else the app's own."""
    scope = current_scope_or_none()
    found = scope.container if scope is not None else None
    if found is None:
        found = request.app.state.container
    return cast("Container", found)


def app_dependency(select: Callable[["Container"], di.Provider[T]]) -> Dependency[T]:
    """A FastAPI dependency resolving an app-lifetime provider (a `Singleton`)."""

    async def resolve(request: Request) -> T:
        return select(container_of(request))()

    return resolve


principal = request_dependency(lambda c: c.principal)
user_keys = request_dependency(lambda c: c.user_keys)
gemini_client = request_dependency(lambda c: c.gemini_client)
exa_client = request_dependency(lambda c: c.exa_client)
copilotkit_client = request_dependency(lambda c: c.copilotkit_client)
key_store = app_dependency(lambda c: c.key_store)
settings = app_dependency(lambda c: c.settings)
engine = app_dependency(lambda c: c.engine)
key_validator = app_dependency(lambda c: c.key_validator)
event_log = app_dependency(lambda c: c.event_log)
usage = app_dependency(lambda c: c.usage)
metrics = app_dependency(lambda c: c.metrics)

PrincipalDep = Annotated[Principal, Depends(principal)]
UserKeysDep = Annotated[UserKeys, Depends(user_keys)]
GeminiDep = Annotated[GeminiClient, Depends(gemini_client)]
ExaDep = Annotated[ExaClient, Depends(exa_client)]
CopilotKitDep = Annotated[CopilotKitClient, Depends(copilotkit_client)]
KeyStoreDep = Annotated[KeyStore, Depends(key_store)]
SettingsDep = Annotated[Settings, Depends(settings)]
EngineDep = Annotated[Engine, Depends(engine)]
KeyValidatorDep = Annotated[KeyValidator, Depends(key_validator)]
EventLogDep = Annotated[EventLog, Depends(event_log)]
UsageDep = Annotated[UsageTracker, Depends(usage)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
