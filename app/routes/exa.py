"""`POST /v1/exa/search`: Exa search with the caller's own key."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from keyscope.app.deps import ExaDep
from keyscope.app.problems import ProblemRoute

router = APIRouter(route_class=ProblemRoute, prefix="/v1/exa", tags=["exa"])


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2_000)
    num_results: int = Field(default=5, ge=1, le=100)


class SearchHit(BaseModel):
    title: str | None
    url: str


class SearchOut(BaseModel):
    results: list[SearchHit]


@router.post("/search")
async def search(body: SearchIn, exa: ExaDep) -> SearchOut:
    """Search results as title and URL."""
    results = await exa.search(body.query, body.num_results)
    return SearchOut(results=[SearchHit(title=r.title, url=r.url) for r in results])
