"""Test-only routes that use the injected values the ways real apps do: several clients in one
`async def`, a `def` endpoint in the thread pool, a streaming body and a background task.

Each one calls the (fake) upstream with a nonce in the payload, so a test can match every
upstream request to the request that caused it and check whose key it carried.
"""

import asyncio
from collections.abc import AsyncIterator

import anyio.from_thread
from fastapi import APIRouter, BackgroundTasks
from starlette.responses import StreamingResponse

from keyscope.app.deps import ExaDep, GeminiDep, UserKeysDep
from keyscope.providers.exa import ExaClient

router = APIRouter(prefix="/probe")


@router.post("/both/{nonce}")
async def both(nonce: str, gemini: GeminiDep, exa: ExaDep, keys: UserKeysDep) -> dict[str, str]:
    """Two clients and UserKeys in one request: the keys must load once."""
    await asyncio.sleep(0)
    answer = await gemini.generate(f"{keys.user_id}|{nonce}", "gemini-2.5-flash")
    await asyncio.sleep(0.001)
    await exa.search(f"{keys.user_id}|{nonce}", 1)
    return {"user": keys.user_id, "text": answer.text}


@router.post("/sync/{nonce}")
def sync(nonce: str, exa: ExaDep, keys: UserKeysDep) -> dict[str, str]:
    """A `def` endpoint: runs in the thread pool with values resolved on the loop."""
    anyio.from_thread.run(exa.search, f"{keys.user_id}|{nonce}", 1)
    return {"user": keys.user_id}


@router.post("/stream/{nonce}")
async def stream(nonce: str, gemini: GeminiDep, keys: UserKeysDep) -> StreamingResponse:
    """The upstream call happens while the body streams, after the endpoint returned."""

    async def body() -> AsyncIterator[bytes]:
        yield b"start;"
        await asyncio.sleep(0.005)
        answer = await gemini.generate(f"{keys.user_id}|{nonce}", "gemini-2.5-flash")
        yield answer.text.encode()

    return StreamingResponse(body(), media_type="text/plain")


async def _later(exa: ExaClient, query: str) -> None:
    await asyncio.sleep(0.005)
    await exa.search(query, 1)


@router.post("/background/{nonce}")
async def background(
    nonce: str, tasks: BackgroundTasks, exa: ExaDep, keys: UserKeysDep
) -> dict[str, str]:
    """The upstream call happens in a background task, after the response is sent."""
    tasks.add_task(_later, exa, f"{keys.user_id}|{nonce}")
    return {"user": keys.user_id}
