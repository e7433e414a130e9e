"""The one handler that renders every error as problem+json (RFC 9457).

Validation errors are re-rendered without pydantic's `input` field: FastAPI's default echoes
the rejected value, which for `PUT /v1/keys` is the caller's key.
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        return problem(exc.status, exc.slug, exc.title, exc.detail, exc.headers)
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
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        return problem(exc.status_code, slug, str(exc.detail), str(exc.detail), exc.headers)
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return problem(500, "internal", "Internal error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    for kind in (AppError, ProviderError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, handle_error)
    app.add_exception_handler(Exception, handle_error)
