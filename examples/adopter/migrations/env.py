"""The project's Alembic environment: its own tables only, its own version table, the
database URL from KEYSCOPE_DATABASE_URL (the one database both histories share)."""

import os

from alembic import context
from app.notes import metadata
from sqlalchemy import create_engine

# The project's own version table. keyscope keeps its revisions in a table of its own too,
# so the two histories never read each other's revision ids.
VERSION_TABLE = "adopter_alembic_version"


def include_object(_obj: object, name: str | None, type_: str, *_: object) -> bool:
    # Autogenerate compares this project's tables only, never keyscope's.
    return type_ != "table" or name in metadata.tables


def run() -> None:
    url = context.config.attributes.get("url") or os.environ["KEYSCOPE_DATABASE_URL"]
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=context.config.attributes.get("version_table", VERSION_TABLE),
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
