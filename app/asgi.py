"""ASGI entry point for uvicorn (`keyscope serve` and `uvicorn keyscope.app.asgi:app`)."""

from keyscope.app.main import create_app

app = create_app()
