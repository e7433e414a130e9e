"""`GET /metrics`: Prometheus text format. Off by default in production (see README)."""

from fastapi import APIRouter, Response

from keyscope.app.deps import MetricsDep
from keyscope.app.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(registry: MetricsDep) -> Response:
    """Every keyscope counter, for a Prometheus scrape."""
    return Response(registry.render(), media_type=CONTENT_TYPE)
