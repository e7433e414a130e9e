"""Test-only routes that run the legacy example service the other ways legacy code runs:
in a background task, `asyncio.to_thread`, and keyscope's context-carrying executor helpers."""

import asyncio
import contextlib

from fastapi import APIRouter, BackgroundTasks

from keyscope.app.legacy.overlay.helpers import ContextThreadPoolExecutor, run_in_executor
from keyscope.app.legacy.wiring import gemini_service
from keyscope.app.legacy.wiring.router import legacy_errors
from keyscope.app.routes.gemini import GenerateIn

MODEL = "gemini-2.5-flash"
router = APIRouter(prefix="/probe-legacy")
_pool = ContextThreadPoolExecutor(max_workers=8, thread_name_prefix="legacy-probe")


async def _quietly(prompt: str) -> None:
    # A background task's error would only reach the server log; the test checks upstream.
    with contextlib.suppress(Exception):
        await asyncio.sleep(0.002)
        await gemini_service.agenerate_content(prompt, MODEL)


@router.post("/background")
async def background(body: GenerateIn, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(_quietly, body.prompt)
    return {"queued": "yes"}


@router.post("/to-thread")
async def to_thread(body: GenerateIn) -> dict[str, str]:
    with legacy_errors():
        text = await asyncio.to_thread(gemini_service.generate_content, body.prompt, MODEL)
    return {"text": text}


@router.post("/executor")
async def executor(body: GenerateIn) -> dict[str, str]:
    future = _pool.submit(gemini_service.generate_content, body.prompt, MODEL)
    with legacy_errors():
        text = await asyncio.wrap_future(future)
    return {"text": text}


@router.post("/run-in-executor")
async def in_executor(body: GenerateIn) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    with legacy_errors():
        text = await run_in_executor(
            loop, None, gemini_service.generate_content, body.prompt, MODEL
        )
    return {"text": text}
