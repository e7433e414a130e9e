"""A Gemini service written the way legacy code is: the key comes from the environment.

Nothing here knows about users, tokens or keyscope: every call reads `GEMINI_API_KEY` with
`os.getenv`, as single-tenant code typically does. With
`KEYSCOPE_LEGACY_ENV=overlay` that read returns the requesting user's key, per request, under
any concurrency; with the overlay off it reads the real environment as it always did.

The one concession to keyscope is `configure()`, called once at start-up with the process's
shared HTTP transport (else every `genai.Client` builds a fresh SSL context).
"""

import os

from google import genai
from google.genai import types


class GeminiKeyMissing(RuntimeError):
    """GEMINI_API_KEY is not set (for this user, under the overlay)."""


_http_options: types.HttpOptions | None = None


def configure(http_options: types.HttpOptions) -> None:
    global _http_options
    _http_options = http_options


def _client() -> genai.Client:
    gemini_key = os.getenv("GEMINI_API_KEY")
    if not gemini_key:
        raise GeminiKeyMissing("GEMINI_API_KEY is not set")
    return genai.Client(api_key=gemini_key, vertexai=False, http_options=_http_options)


def generate_content(prompt: str, model: str) -> str:
    """Blocking call, as legacy code runs it (in a `def` endpoint, a thread, an executor)."""
    client = _client()
    response = client.models.generate_content(model=model, contents=prompt)
    return response.text or ""


async def agenerate_content(prompt: str, model: str) -> str:
    """The same call through the SDK's async surface."""
    client = _client()  # held for the whole call: a temporary would be closed mid-call
    response = await client.aio.models.generate_content(model=model, contents=prompt)
    return response.text or ""
