"""The project's app factory: its own app and routers, keyscope mounted with integrate()."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import routes
from app.containers import AppContainer, build_container
from keyscope.app.main import integrate


def create_app(container: AppContainer | None = None) -> FastAPI:
    container = container or build_container()
    started: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        # The project's own start-up; keyscope's runs around it, already chained.
        started.append("adopter")
        yield {"started": started}

    app = FastAPI(title="adopter", lifespan=lifespan)
    app.include_router(routes.router)
    container.wire(modules=[routes])
    # keyscope's keys API at /v1/keys, its health checks too; the legacy overlay and its
    # middleware when KEYSCOPE_LEGACY_ENV=overlay.
    integrate(app, container.keyscope(), health_routes=True)
    app.state.app_container = container
    return app
