"""BASELINE WE REPLACE, over HTTP: the seed's middleware as the seed wrote it (Starlette
BaseHTTPMiddleware, token → user id → the user's keys from the database → os.environ set,
call_next, restore), around `SeedApiKeyInjection`. Only for tests that show the leak.

`add_middleware` puts it outside keyscope's RequestScopeMiddleware, so it opens a request
scope of its own to load the caller's keys (the seed read them from the database itself).
A failure to load is not swallowed: a baseline that quietly set no keys would show "no key
found" for every request and pass for the wrong reason."""

from collections.abc import Awaitable, Callable

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from keyscope.app.awaitables import awaited
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.scope import request_scope
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
        with request_scope(request.headers):
            keys = await awaited(self._load_keys())
            env = {
                "gemini": keys.secret_for(ProviderName.GEMINI) or "",
                "exa": keys.secret_for(ProviderName.EXA) or "",
            }
        seed = SeedApiKeyInjection(lambda _user: env, deploy_env="production")
        return await seed(keys.user_id, lambda: call_next(request))
