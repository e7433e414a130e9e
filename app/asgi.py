"""ASGI entry point for uvicorn (`keyscope serve` and `uvicorn app.asgi:app`)."""

from app.main import create_app

app = create_app()
