"""BASELINE WE REPLACE: the os.environ set/restore middleware keyscope replaces, reimplemented.

The design keyscope was started to replace (a BaseHTTPMiddleware that sets each user's keys
in `os.environ` and restores them afterwards), kept only so tests can show what the overlay
fixes. Do not use it.
It writes each user's keys into the process environment for the duration of the request
and restores the saved values afterwards; any await in between lets another request
overwrite them (docs/legacy.md has the wrong-key counts), and the interleaved restores
can leave a user's key in the environment after every request has finished.

The HTTP plumbing is reduced to what that logic uses: a user id instead of a parsed
token, a `fetch_user_keys` callable instead of the database context manager.
"""

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class SeedApiKeyInjection:
    """The seed's `__call__(request, call_next)`, step by step (numbers as in the seed)."""

    def __init__(
        self, fetch_user_keys: Callable[[str], Mapping[str, str]], deploy_env: str
    ) -> None:
        self.fetch_user_keys = fetch_user_keys
        self.deploy_env = deploy_env

    async def __call__(self, user_id: str | None, call_next: Callable[[], Awaitable[T]]) -> T:
        # 1. user id from the token (given here)
        if not user_id or self.deploy_env == "local":
            return await call_next()  # skip in local mode
        # 2. the user's keys from the database
        user_keys = self.fetch_user_keys(user_id)
        # 3. save the original environment (if any)
        original_gemini = os.environ.get("GEMINI_API_KEY")
        original_exa = os.environ.get("EXA_API_KEY")
        # 4. inject the user's keys
        os.environ["GEMINI_API_KEY"] = user_keys["gemini"]
        os.environ["EXA_API_KEY"] = user_keys["exa"]
        try:
            # 5. process the request with the user's keys
            return await call_next()
        finally:
            # 6. restore the original environment
            if original_gemini is None:
                del os.environ["GEMINI_API_KEY"]
            else:
                os.environ["GEMINI_API_KEY"] = original_gemini
            if original_exa is None:
                del os.environ["EXA_API_KEY"]
            else:
                os.environ["EXA_API_KEY"] = original_exa
