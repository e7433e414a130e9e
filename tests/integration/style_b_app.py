"""The old README's "style B": an app assembled by hand around keyscope's middleware and
container, without integrate(). Served by uvicorn in tests/integration/test_overlay_guard.py."""

import os

from fastapi import FastAPI

from keyscope.app.problems import install_error_handlers
from keyscope.app.scope import RequestScopeMiddleware
from keyscope.containers import Container

app = FastAPI()
app.add_middleware(RequestScopeMiddleware)
install_error_handlers(app)
app.state.container = Container()


@app.get("/legacy")
def legacy() -> dict[str, bool]:
    return {"has_key": os.getenv("GEMINI_API_KEY") is not None}
