"""`POST /v1/gemini/generate`: generateContent with the caller's own key."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyscope.app.deps import GeminiDep, SettingsDep
from keyscope.app.problems import ProblemRoute

router = APIRouter(route_class=ProblemRoute, prefix="/v1/gemini", tags=["gemini"])


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[\w.\-/]+$")

    @field_validator("model")
    @classmethod
    def _no_path_segments(cls, value: str | None) -> str | None:
        # The model name becomes part of the upstream URL path: no '..' or empty segments.
        if value is not None and any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError("must be a model name such as gemini-2.5-flash")
        return value


class GenerateOut(BaseModel):
    text: str
    model: str


@router.post("/generate")
async def generate(body: GenerateIn, gemini: GeminiDep, settings: SettingsDep) -> GenerateOut:
    """One user turn to Gemini; the answer's text."""
    model = body.model or settings.gemini_default_model
    answer = await gemini.generate(body.prompt, model)
    return GenerateOut(text=answer.text, model=answer.model)
