"""BASELINE WE REPLACE, over HTTP: the seed's middleware as the seed wrote it (Starlette
BaseHTTPMiddleware, token → user id → the user's keys from the database → os.environ set,
call_next, restore), around `SeedApiKeyInjection`. Only for tests that show the leak."""

from collections.abc import Awaitable, Callable

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from keyscope.app.awaitables import awaited
from keyscope.app.errors import AppError
from keyscope.app.keys.user_keys import UserKeys
from keyscope.providers import ProviderName
from tests.legacy.seed_middleware import SeedApiKeyInjection


class SeedHttpMiddleware(BaseHTTPMiddleware):
    def __init__(
        self, app: ASGIApp, load_keys: Callable[[], UserKeys | Awaitable[UserKeys]]
    ) -> None:
        super().__init__(app)
        self._load_keys = load_keys

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            keys = await awaited(self._load_keys())
        except AppError:
            return await call_next(request)
        env = {
            "gemini": keys.secret_for(ProviderName.GEMINI) or "",
            "exa": keys.secret_for(ProviderName.EXA) or "",
        }
        seed = SeedApiKeyInjection(lambda _user: env, deploy_env="production")
        return await seed(keys.user_id, lambda: call_next(request))
