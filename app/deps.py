"""The one place FastAPI meets the container: `Annotated` aliases for endpoints.

Each alias is a FastAPI dependency that resolves a provider of the app's own container
(`app.state.container`) and awaits it if it is async. Compared with dependency-injector's
`Depends(Provide[...])` + `@inject` wiring this has no process-global wiring (every app and
test has its own container), no thread-pool hop per dependency (the stock `Provide` marker's
sync `__call__` sends each one through the pool: 0.19-0.26x a bare endpoint's req/s), and
`def` endpoints receive values already resolved on the event loop.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from dependency_injector import providers as di
from fastapi import Depends, Request

from keyscope.app.keys.store import KeyStore
from keyscope.app.security.tokens import Principal
from keyscope.app.user_keys import UserKeys
from keyscope.providers.copilotkit import CopilotKitClient
from keyscope.providers.exa import ExaClient
from keyscope.providers.gemini import GeminiClient

if TYPE_CHECKING:
    from keyscope.containers import Container


def provided(
    select: Callable[["Container"], di.Provider[Any]],
) -> Callable[[Request], Awaitable[Any]]:
    """A FastAPI dependency resolving `select(container)` for the current request."""

    async def resolve(request: Request) -> Any:
        value = select(request.app.state.container)()
        if inspect.isawaitable(value):  # still loading; a ready value is used as it is
            value = await value
        return value

    resolve.__name__ = f"provide_{select.__name__}"
    return resolve


def container_of(request: Request) -> "Container":
    container: Container = request.app.state.container
    return container


PrincipalDep = Annotated[Principal, Depends(provided(lambda c: c.principal))]
UserKeysDep = Annotated[UserKeys, Depends(provided(lambda c: c.user_keys))]
KeyStoreDep = Annotated[KeyStore, Depends(provided(lambda c: c.key_store))]
GeminiDep = Annotated[GeminiClient, Depends(provided(lambda c: c.gemini_client))]
ExaDep = Annotated[ExaClient, Depends(provided(lambda c: c.exa_client))]
CopilotKitDep = Annotated[CopilotKitClient, Depends(provided(lambda c: c.copilotkit_client))]
