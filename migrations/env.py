"""Alembic environment: metadata from the app's models, URL from the caller or settings.

keyscope's revision lives in its own version table (`keyscope_alembic_version`), and only
keyscope's tables are compared by autogenerate, so keyscope's history shares a database with
the host application's own Alembic history in either order.
"""

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from keyscope.app.db import metadata, require_driver
from keyscope.app.keys import models  # noqa: F401  # registers the tables on `metadata`
from keyscope.app.migrate import VERSION_TABLE, adopt_default_version_row

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if isinstance(url, str):
        return url
    from keyscope.app.settings import read_settings

    return read_settings().database_url


def _ours(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Autogenerate looks at keyscope's tables only: the host's are not ours to drop."""
    return type_ != "table" or name in metadata.tables


_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "version_table": VERSION_TABLE,
    "include_name": _ours,
}


def run_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run(conn: Connection) -> None:
    context.configure(connection=conn, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # the caller owns this connection and its transaction
        adopt_default_version_row(connection)
        _run(connection)
        return
    url = _url()
    require_driver(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:  # committed on its own, before Alembic reads the version
        adopt_default_version_row(conn)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
