"""Alembic migrations: the only source of keyscope's schema."""
