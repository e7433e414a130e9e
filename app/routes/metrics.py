"""`GET /metrics`: Prometheus text format. Off by default in production (see README)."""

from fastapi import APIRouter, Request, Response

from keyscope.app.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Every keyscope counter, for a Prometheus scrape."""
    body = request.app.state.container.metrics().render()
    return Response(body, media_type=CONTENT_TYPE)
