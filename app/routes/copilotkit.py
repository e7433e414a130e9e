"""CopilotKit: the caller's publishable key for the frontend, and a streaming runtime proxy."""

import json

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from keyscope.app.clients import key_origin
from keyscope.app.deps import CopilotKitDep
from keyscope.app.errors import KeyNotPublishable
from keyscope.app.problems import ProblemRoute
from keyscope.providers import ProviderName
from keyscope.providers.copilotkit import PUBLISHABLE_PREFIX, is_publishable

router = APIRouter(route_class=ProblemRoute, prefix="/v1/copilotkit", tags=["copilotkit"])


class CopilotKitConfig(BaseModel):
    public_api_key: str
    runtime_url: str
    key_origin: str


RUNTIME_PATH = "/v1/copilotkit/runtime"
# Built once: `json.dumps` with options builds a new encoder on every call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@router.get(
    "/config",
    response_class=Response,
    responses={200: {"model": CopilotKitConfig, "content": {"application/json": {}}}},
)
async def config(request: Request, copilotkit: CopilotKitDep) -> Response:
    """The caller's Copilot Cloud public key (`ck_pub_…`, publishable by design), for the UI.

    Anything else (a row stored before keys were checked, an operator's platform key) is
    never returned: this answer goes to browsers."""
    if not is_publishable(copilotkit.public_key):
        raise KeyNotPublishable(
            f"The CopilotKit key in use is not a {PUBLISHABLE_PREFIX} key; store a publishable "
            "one with PUT /v1/keys/copilotkit."
        )
    # The body is built here from values keyscope produced itself, so it is encoded directly
    # instead of being validated again against the response model (documented above).
    origin = key_origin(ProviderName.COPILOTKIT)
    body = {
        "public_api_key": copilotkit.public_key,
        "runtime_url": _runtime_url(request),
        "key_origin": origin.value if origin is not None else None,
    }
    return Response(_encode(body).encode(), media_type="application/json")


def _runtime_url(request: Request) -> str:
    """Where the frontend reaches the runtime proxy: under the app's mount point (`root_path`)
    and the prefix keyscope was integrated with."""
    integration = getattr(request.app.state, "keyscope", None)
    prefix = integration.prefix if integration is not None else ""
    root_path: str = request.scope.get("root_path", "")
    return root_path + prefix + RUNTIME_PATH


@router.post(
    "/runtime",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Copilot Cloud's answer, streamed as it arrives",
            "content": {"text/event-stream": {}},
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def runtime(request: Request, copilotkit: CopilotKitDep) -> StreamingResponse:
    """Forward the body to Copilot Cloud with the caller's key; stream the answer back."""
    body = await request.body()  # bounded before it is read: app/body_limit.py
    upstream = await copilotkit.stream(
        body,
        request.headers.get("content-type", "application/json"),
        accept=request.headers.get("accept", "*/*"),
    )
    return StreamingResponse(
        upstream,
        status_code=upstream.status_code,
        headers=dict(upstream.headers),
        # Closes the upstream response if the client goes away before the body is done.
        background=BackgroundTask(upstream.aclose),
    )
