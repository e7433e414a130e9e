"""Load-test pacing that tells a slow machine from a stuck run.

A request that takes long on a machine shared with other jobs is not a failure; a run in which
nothing has finished for a long while is. So the clients get a timeout far above any answer
the tests assert on, and a run fails only when it stops making progress for STALL_SECONDS.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx

T = TypeVar("T")

# The clients' own limit: never what a test asserts, only a backstop for a dead connection.
CLIENT_TIMEOUT = httpx.Timeout(300.0, connect=60.0)
# How long a run may go without a single request finishing before it counts as stuck.
STALL_SECONDS = 120.0


async def gather_with_progress(
    awaitables: Iterable[Awaitable[T]], *, stall_seconds: float = STALL_SECONDS
) -> list[T]:
    """Await all, in order; fails when none finishes for `stall_seconds`, or with the first
    error (the rest are cancelled either way)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=stall_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                raise AssertionError(
                    f"no request finished in {stall_seconds:g} s; "
                    f"{len(pending)} of {len(tasks)} still outstanding"
                )
            for task in done:
                task.result()  # raises the first failure
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return [task.result() for task in tasks]


async def wait_for_count(
    count: Callable[[], int], expected: int, *, stall_seconds: float = 15.0
) -> int:
    """Poll `count()` until it reaches `expected` or stops growing for `stall_seconds`;
    returns the last count (the caller asserts on it)."""
    last = count()
    moved = time.monotonic()
    while last < expected and time.monotonic() - moved < stall_seconds:
        await asyncio.sleep(0.02)
        now = count()
        if now != last:
            last, moved = now, time.monotonic()
    return last
