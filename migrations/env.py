"""Alembic environment: metadata from the app's models, URL from the caller or settings."""

from alembic import context
from sqlalchemy import create_engine, pool

from keyscope.app.db import metadata
from keyscope.app.keys import models  # noqa: F401  # registers the tables on `metadata`

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if isinstance(url, str):
        return url
    from keyscope.app.settings import Settings

    return Settings().database_url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
