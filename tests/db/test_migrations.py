"""Migrations are the only schema: they build what the models describe, on both engines."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from keyscope.app.db import metadata
from keyscope.app.migrate import VERSION_TABLE, alembic_config, upgrade
from tests.support.databases import postgres_database, sqlite_url


def _drift(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                compare_metadata(
                    MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
                    metadata,
                )
            )
    finally:
        engine.dispose()


def _check_round_trip(url: str) -> None:
    upgrade(url)
    assert _drift(url) == []
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(url)
    assert "provider_keys" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(url)
    assert _drift(url) == []


def test_sqlite_migrations_match_models(tmp_path: Path) -> None:
    """On SQLite, head matches the models exactly, and downgrade/upgrade round-trips."""
    _check_round_trip(sqlite_url(tmp_path))


def test_postgres_migrations_match_models() -> None:
    """On PostgreSQL, head matches the models exactly, and downgrade/upgrade round-trips."""
    with postgres_database() as url:
        _check_round_trip(url)


def test_models_cover_every_migrated_table(tmp_path: Path) -> None:
    """No table exists only in migrations (keyscope's own version table aside)."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names()) - {"keyscope_alembic_version"}
    engine.dispose()
    assert tables == set(metadata.tables)


@pytest.mark.parametrize(
    "module", sorted((Path(__file__).parents[2] / "migrations" / "versions").glob("*.py"))
)
def test_revision_files_are_date_prefixed(module: Path) -> None:
    """Revision files sort by date (YYYY_MM_DD_...)."""
    if module.name == "__init__.py":
        return
    assert module.name[:10].replace("_", "").isdigit()
