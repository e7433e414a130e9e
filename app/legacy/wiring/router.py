"""`/v1/legacy/gemini/*`: the legacy example service behind the overlay (mounted only when
KEYSCOPE_LEGACY_ENV=overlay). Same contract as `/v1/gemini/generate`."""

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends
from starlette.responses import StreamingResponse

from keyscope.app.deps import SettingsDep, principal
from keyscope.app.errors import MissingKey
from keyscope.app.legacy.wiring import gemini_service
from keyscope.app.problems import ProblemRoute
from keyscope.app.routes.gemini import GenerateIn, GenerateOut
from keyscope.providers.gemini import translate_error

# Authentication is the route's own business, as for every other route: the overlay only
# binds keys, it does not reject requests.
router = APIRouter(
    route_class=ProblemRoute,
    prefix="/v1/legacy/gemini",
    tags=["legacy"],
    dependencies=[Depends(principal)],
)


@contextmanager
def legacy_errors() -> Iterator[None]:
    """Legacy code raises SDK errors; the service answers with its own problems."""
    try:
        yield
    except gemini_service.GeminiKeyMissing:
        raise MissingKey(
            "No gemini key is stored for this user: store one with PUT /v1/keys/gemini."
        ) from None
    except MissingKey:
        raise
    except Exception as exc:
        raise translate_error(exc, os.getenv("GEMINI_API_KEY") or "") from None


def _model(body: GenerateIn, settings: SettingsDep) -> str:
    return body.model or settings.gemini_default_model


@router.post("/generate")
def generate(body: GenerateIn, settings: SettingsDep) -> GenerateOut:
    """Sync legacy code in a `def` endpoint (the thread pool copies the request's context)."""
    model = _model(body, settings)
    with legacy_errors():
        return GenerateOut(text=gemini_service.generate_content(body.prompt, model), model=model)


@router.post("/generate-async")
async def generate_async(body: GenerateIn, settings: SettingsDep) -> GenerateOut:
    """Async legacy code in an `async def` endpoint."""
    model = _model(body, settings)
    with legacy_errors():
        text = await gemini_service.agenerate_content(body.prompt, model)
    return GenerateOut(text=text, model=model)


@router.post("/stream")
async def stream(body: GenerateIn, settings: SettingsDep) -> StreamingResponse:
    """The env is read while the body streams, after the endpoint returned: a set-and-restore
    middleware (tests/legacy/seed_middleware.py) has restored os.environ by then; the overlay
    still answers."""
    model = _model(body, settings)

    async def chunks() -> AsyncIterator[bytes]:
        yield b""
        try:
            with legacy_errors():
                text = await gemini_service.agenerate_content(body.prompt, model)
        except Exception as exc:  # the status line is sent: end the body with the reason
            yield f"error: {type(exc).__name__}".encode()
            return
        yield text.encode()

    return StreamingResponse(chunks(), media_type="text/plain")
