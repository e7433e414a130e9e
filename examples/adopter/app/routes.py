"""The project's endpoints: keyscope's Annotated aliases, dependency-injector wiring, and
legacy code."""

import anyio.to_thread
from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, HTTPException

from app import legacy
from app.containers import AppContainer
from app.notes import NoteStore
from keyscope.app.deps import GeminiDep, PrincipalDep
from keyscope.app.security.tokens import Principal
from keyscope.providers.gemini import GeminiClient

router = APIRouter()
MODEL = "gemini-2.5-flash"


@router.post("/annotated/ask")
async def ask_annotated(prompt: str, gemini: GeminiDep, principal: PrincipalDep) -> dict[str, str]:
    """The recommended path: keyscope's Annotated aliases, no wiring."""
    answer = await gemini.generate(prompt, MODEL)
    return {"user": principal.subject, "text": answer.text}


@router.post("/wired/ask")
@inject
async def ask_wired(
    prompt: str,
    gemini: GeminiClient = Depends(Provide[AppContainer.keyscope.gemini_client]),
    notes: NoteStore = Depends(Provide[AppContainer.notes]),
    principal: Principal = Depends(Provide[AppContainer.keyscope.principal]),
) -> dict[str, str]:
    """dependency-injector's standard wiring, in an `async def` endpoint."""
    answer = await gemini.generate(prompt, MODEL)
    await anyio.to_thread.run_sync(notes.add, principal.subject, prompt)
    return {"user": principal.subject, "text": answer.text}


@router.post("/wired/ask-sync")
@inject
def ask_wired_sync(
    prompt: str,
    gemini: GeminiClient = Depends(Provide[AppContainer.keyscope.gemini_client]),
    principal: Principal = Depends(Provide[AppContainer.keyscope.principal]),
) -> dict[str, str]:
    """The same wiring in a `def` endpoint (runs in a worker thread)."""
    answer = anyio.from_thread.run(gemini.generate, prompt, MODEL)
    return {"user": principal.subject, "text": answer.text}


@router.get("/notes")
@inject
def my_notes(
    principal: Principal = Depends(Provide[AppContainer.keyscope.principal]),
    notes: NoteStore = Depends(Provide[AppContainer.notes]),
) -> dict[str, list[str]]:
    return {"notes": notes.of(principal.subject)}


@router.post("/legacy/ask")
def ask_legacy(prompt: str, principal: PrincipalDep) -> dict[str, str]:
    """Old code with genai.Client(api_key=os.getenv(...)), behind the overlay."""
    try:
        text = legacy.ask_with_explicit_key(prompt)
    except ValueError as exc:  # the SDK found no key: this user has none stored
        raise HTTPException(409, detail="store a gemini key first") from exc
    return {"user": principal.subject, "text": text}


@router.post("/legacy/ask-env")
async def ask_legacy_env(prompt: str, principal: PrincipalDep) -> dict[str, str]:
    """Old code with genai.Client() reading the environment itself, behind the overlay."""
    try:
        text = await legacy.ask_with_sdk_env(prompt)
    except ValueError as exc:  # the SDK found no key: this user has none stored
        raise HTTPException(409, detail="store a gemini key first") from exc
    return {"user": principal.subject, "text": text}
