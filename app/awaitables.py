"""`MaybeAwaitable[T]`: a value now, or an awaitable of it later, and `awaited()` for either.

Request-scoped values hand out the plain value when it is ready (a cache hit: no task, no
event-loop iteration) and an awaitable only while something really waits (a database query,
a JWKS fetch). Every step of the request path is typed with this alias, so mypy follows a
`GeminiClient` from the provider that builds it to the endpoint that receives it.
"""

import inspect
from collections.abc import Awaitable
from typing import TypeAlias, TypeVar

T = TypeVar("T")

MaybeAwaitable: TypeAlias = T | Awaitable[T]


async def awaited(value: MaybeAwaitable[T]) -> T:
    """`value`, awaited if it is awaitable: `keys = await awaited(container.user_keys())`."""
    if inspect.isawaitable(value):
        return await value
    return value
