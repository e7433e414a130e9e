"""`uvicorn app.asgi:app`: settings from the environment (KEYSCOPE_* and the project's own)."""

from app.main import create_app

app = create_app()
