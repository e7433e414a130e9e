"""keyscope's migrations, run from code: `keyscope migrate`, `keyscope serve`, tests, adopters.

keyscope records its Alembic revision in a version table of its own
(`keyscope_alembic_version`), so its history and the host application's own Alembic history
share one database in either order. From an adopter's deployment::

    from keyscope.app.migrate import upgrade

    upgrade("postgresql+psycopg://…")   # the same as `keyscope migrate`
"""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
)

from keyscope import migrations
from keyscope.app.db import ensure_sqlite_directory, require_driver

VERSION_TABLE = "keyscope_alembic_version"
# Alembic's default table: where keyscope recorded its revision before it had a table of its own.
DEFAULT_VERSION_TABLE = "alembic_version"
# keyscope's tables as of its first revision: a default-table row naming a keyscope revision is
# taken for keyscope's own only when these exist too (a host's revision may share a short id).
_FIRST_REVISION_TABLES = frozenset({"provider_keys"})

__all__ = ["VERSION_TABLE", "alembic_config", "head_revisions", "upgrade"]


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # Passed as an attribute, not an ini option: URLs may hold '%', which ini interpolation eats.
    config.attributes["url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply keyscope's migrations up to `revision` (`alembic upgrade head` by default).

    Idempotent; touches only keyscope's tables and `keyscope_alembic_version`, never the host
    application's own Alembic history.
    """
    require_driver(database_url)
    ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), revision)


@cache
def _scripts() -> ScriptDirectory:
    # Parsed once per process: the revision files do not change while it runs.
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


@cache
def head_revisions() -> frozenset[str]:
    """The head revision id(s) of keyscope's migration history."""
    return frozenset(_scripts().get_heads())


@cache
def all_revisions() -> frozenset[str]:
    """Every revision id keyscope's history knows."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


def adopt_default_version_row(conn: Connection) -> str | None:
    """Move keyscope's revision from `alembic_version` to keyscope's own table, once.

    Deployments migrated before keyscope had its own version table hold keyscope's revision
    in Alembic's default table. The row is moved only when keyscope's table holds nothing, the
    default table holds a keyscope revision and keyscope's tables exist; the host's own rows
    are never read for anything else nor changed. Runs in the caller's transaction, so the move
    is all or nothing. Returns the revision moved, if any.
    """
    tables = set(inspect(conn).get_table_names())
    if DEFAULT_VERSION_TABLE not in tables or not tables >= _FIRST_REVISION_TABLES:
        return None
    ours, default = _version_table(VERSION_TABLE), _version_table(DEFAULT_VERSION_TABLE)
    count = select(func.count()).select_from
    if VERSION_TABLE in tables and conn.execute(count(ours)).scalar_one():
        return None
    recorded = set(conn.execute(select(default.c.version_num)).scalars())
    found = sorted(recorded & all_revisions())
    if len(found) != 1:
        return None
    revision: str = found[0]
    ours.create(conn, checkfirst=True)
    conn.execute(insert(ours).values(version_num=revision))
    conn.execute(delete(default).where(default.c.version_num == revision))
    if not conn.execute(count(default)).scalar_one():
        # It held keyscope's row alone, so keyscope created it: leave no empty stray table.
        default.drop(conn)
    return revision


def _version_table(name: str) -> Table:
    """Alembic's version table layout (the primary key named as Alembic names it)."""
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )
