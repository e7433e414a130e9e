"""Run Alembic from code: `keyscope migrate`, `keyscope serve` and the test fixtures."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from keyscope import migrations
from keyscope.app.db import ensure_sqlite_directory


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # Passed as an attribute, not an ini option: URLs may hold '%', which ini interpolation eats.
    config.attributes["url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), revision)
