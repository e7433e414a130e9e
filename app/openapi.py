"""OpenAPI that matches what keyscope sends: bearer security, problem+json errors, enums.

FastAPI's generated document has no security scheme (so /docs cannot send a token), lists
its own `HTTPValidationError` for 422 (keyscope answers problem+json) and none of the other
errors. This post-processes it once, for keyscope's own operations only (those under the
prefixes given), so an adopter's own operations are left as they are. keyscope's paths are
keyed below as it declares them; under `integrate(app, prefix=...)` the table is moved under
the prefix once, when the hook is installed.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI

from keyscope.providers import ProviderName

PROBLEM_JSON = "application/problem+json"
SCHEME = "bearerAuth"

_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "provider": {"type": "string", "enum": [p.value for p in ProviderName]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
}

_DESCRIPTIONS = {
    400: "Unparsable body, or the provider refused the request (e.g. unknown model)",
    401: "Missing or invalid bearer token",
    404: "Unknown provider, or no key stored",
    405: "Method not allowed",
    409: "No usable key for the provider",
    413: "Request body too large",
    415: "Content type is not application/json",
    422: "Invalid request, or the provider rejected the key",
    429: "Provider rate limit",
    502: "Provider unreachable or its answer malformed",
    503: "Not ready",
    504: "Provider did not answer within the deadline",
}

_UPSTREAM = (400, 409, 422, 429, 502, 504)
# Errors by (method, path) beyond those every authenticated operation can answer; paths as
# keyscope's routers declare them (no integration prefix).
_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("put", "/v1/keys/{provider}"): (404, 413, 415, 422),
    ("delete", "/v1/keys/{provider}"): (404,),
    ("get", "/v1/keys"): (),
    ("get", "/v1/keys/events"): (),
    ("post", "/v1/keys/{provider}/verify"): (404, 409),
    ("post", "/v1/gemini/generate"): (413, *_UPSTREAM),
    ("post", "/v1/exa/search"): (413, *_UPSTREAM),
    ("get", "/v1/copilotkit/config"): (409,),
    ("post", "/v1/copilotkit/runtime"): (413, *_UPSTREAM),
    ("post", "/v1/legacy/gemini/generate"): (413, *_UPSTREAM),
    ("post", "/v1/legacy/gemini/generate-async"): (413, *_UPSTREAM),
    ("post", "/v1/legacy/gemini/stream"): (413, 409, 422),
    ("get", "/readyz"): (503,),
}


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


ErrorTable = dict[tuple[str, str], tuple[int, ...]]


def errors_under(prefix: str) -> ErrorTable:
    """The per-operation errors of keyscope's routes mounted under `prefix` ("" = none)."""
    return {(method, prefix + path): codes for (method, path), codes in _ERRORS.items()}


def document(
    schema: dict[str, Any],
    authenticated_prefixes: Iterable[str] = ("/v1/",),
    errors: ErrorTable = _ERRORS,
) -> None:
    """Rewrite a FastAPI OpenAPI document in place (see the module docstring); `errors` is
    `errors_under(prefix)` when keyscope's routes are mounted under a prefix."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = _PROBLEM
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    prefixes = tuple(authenticated_prefixes)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            extra = errors.get((method, path))
            secured = path.startswith(prefixes)
            if extra is None and not secured:
                continue
            responses = operation.setdefault("responses", {})
            codes = set(extra or ())
            if secured:
                operation["security"] = [{SCHEME: []}]
                codes.add(401)
            if "422" in responses or "requestBody" in operation:
                codes.add(422)
            if "requestBody" in operation:
                codes.add(400)  # a body that is not even text (FastAPI's parse error)
            for code in sorted(codes):
                responses[str(code)] = _problem_response(code)
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "provider" and parameter.get("in") == "path":
                    parameter["schema"] = {
                        "type": "string",
                        "enum": [p.value for p in ProviderName],
                    }
    schemas = components["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, unused):
            schemas.pop(unused, None)


def _referenced(schema: dict[str, Any], name: str) -> bool:
    return f'"#/components/schemas/{name}"' in json.dumps(schema.get("paths", {}))


def install_openapi(
    app: FastAPI, authenticated_prefixes: Iterable[str] = ("/v1/",), *, prefix: str = ""
) -> None:
    """Wrap `app.openapi` (whatever it was) so the document is rewritten once, when built;
    `prefix` is the one keyscope's routers were included under."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    prefixes = tuple(authenticated_prefixes)
    errors = errors_under(prefix) if prefix else _ERRORS

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            document(schema, prefixes, errors)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
