"""Old code, unchanged: it builds google-genai clients the way it always did, reading the key
from the environment. Behind KEYSCOPE_LEGACY_ENV=overlay each read is the requesting user's key."""

import os

from google import genai
from google.genai import types

MODEL = "gemini-2.5-flash"


def http_options() -> types.HttpOptions:
    # The old code's own setting for where Gemini lives (tests point it at a loopback fake).
    return types.HttpOptions(base_url=os.getenv("ADOPTER_GEMINI_BASE_URL"))


def ask_with_explicit_key(prompt: str) -> str:
    """Blocking, in a `def` endpoint: the key passed explicitly from os.getenv."""
    client = genai.Client(api_key=os.getenv("GEMINI_API_KEY"), http_options=http_options())
    return client.models.generate_content(model=MODEL, contents=prompt).text or ""


async def ask_with_sdk_env(prompt: str) -> str:
    """Async: no key passed, the SDK reads GOOGLE_API_KEY / GEMINI_API_KEY from the env itself."""
    client = genai.Client(http_options=http_options())
    response = await client.aio.models.generate_content(model=MODEL, contents=prompt)
    return response.text or ""
