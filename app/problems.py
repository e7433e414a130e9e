"""The one handler that renders keyscope's errors as problem+json (RFC 9457).

Validation errors are re-rendered without pydantic's `input` field: FastAPI's default echoes
the rejected value, which for `PUT /v1/keys` is the caller's key.

Scope, so that embedding keyscope never changes the host app's own error bodies:

* keyscope's own errors (`AppError`, `ProviderError`) are problems wherever they are raised,
  the host's routes included (they come from keyscope's dependencies).
* Framework errors (`HTTPException`, validation) are problems on the routes keyscope mounts,
  which use `ProblemRoute`; on the host's routes they keep FastAPI's shapes, unless the host
  opts in to problem+json for the whole app (`install_error_handlers(app, everywhere=True)`,
  what `create_app()` does).
"""

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from keyscope.app.errors import PROBLEM_BASE, AppError
from keyscope.providers.errors import ProviderError, RateLimited

log = logging.getLogger("keyscope")

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    return JSONResponse(
        {**body, **extra}, status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Render any exception the app lets escape; unknown ones become a bare 500."""
    if isinstance(exc, AppError):
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.detail)
        return problem(exc.status, exc.slug, exc.title, exc.detail, exc.headers, **exc.members)
    if isinstance(exc, ProviderError):
        headers = {}
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        slug = "provider-" + type(exc).__name__.lower()
        return problem(exc.status, slug, exc.title, str(exc), headers, provider=exc.provider)
    if isinstance(exc, RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return problem(
            422, "validation", "Invalid request", "The request did not validate.", errors=errors
        )
    if isinstance(exc, StarletteHTTPException):
        return _http_problem(request, exc)
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return problem(500, "internal", "Internal error", "An unexpected error occurred.")


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts at this path (Starlette names only the first route's,
    and `PUT` and `DELETE /v1/keys/{provider}` are two routes)."""
    methods: set[str] = set()
    probe = {"type": "http", "path": request.scope["path"], "root_path": "", "method": ""}
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches(probe)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _leaf_routes(routes: Any) -> Any:
    # FastAPI keeps included routers as one node whose routes it lists as "effective" ones.
    for route in routes:
        nested = getattr(route, "effective_route_contexts", None)
        if nested is not None:
            yield from _leaf_routes(nested() if callable(nested) else nested)
        else:
            yield route


def _http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """An HTTPException as a problem; a structured `detail` stays structured (JSON), never a
    Python repr: the title is the status phrase, and the detail goes in `detail` when it is a
    string, else in an extension member `errors`."""
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    if isinstance(exc.detail, str):
        return problem(exc.status_code, slug, phrase, exc.detail, headers)
    return problem(exc.status_code, slug, phrase, phrase, headers, errors=exc.detail)


class ProblemRoute(APIRoute):
    """The route class of every router keyscope mounts: its framework errors are problems too,
    without an app-wide handler that would also reshape the host app's errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def problem_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (RequestValidationError, StarletteHTTPException) as exc:
                return await handle_error(request, exc)

        return problem_handler


ErrorHook = Callable[[Exception], Awaitable[None]]


def install_error_handlers(
    app: FastAPI, *, everywhere: bool = False, on_error: ErrorHook | None = None
) -> None:
    """Render keyscope's errors as problems; with `everywhere`, every error of the app.

    `on_error` first sees each of keyscope's own errors (key health, metrics)."""
    keyscope_handler = handle_error
    if on_error is not None:
        hook = on_error

        async def handle_and_note(request: Request, exc: Exception) -> JSONResponse:
            await hook(exc)
            return await handle_error(request, exc)

        keyscope_handler = handle_and_note
    for kind in (AppError, ProviderError):
        app.add_exception_handler(kind, keyscope_handler)
    if everywhere:
        for other in (RequestValidationError, StarletteHTTPException, Exception):
            app.add_exception_handler(other, handle_error)
