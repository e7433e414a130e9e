"""Migrate both histories in the shared database: keyscope's, then the project's."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from keyscope.app.migrate import upgrade as upgrade_keyscope

ROOT = Path(__file__).resolve().parents[1]


def upgrade_project(database_url: str, version_table: str | None = None) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = database_url
    if version_table is not None:
        config.attributes["version_table"] = version_table
    command.upgrade(config, "head")


def upgrade_all(database_url: str) -> None:
    upgrade_keyscope(database_url)
    upgrade_project(database_url)
