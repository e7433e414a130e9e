"""Both histories in one database: keyscope's and the project's, in either order."""

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from app.migrate import upgrade_project
from keyscope.app.migrate import upgrade as upgrade_keyscope
from tests.conftest import fresh_database

KEYSCOPE_VERSION_TABLE = "keyscope_alembic_version"


def _versions(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        found = {}
        with engine.connect() as conn:
            for table in sorted(t for t in tables if t.endswith("alembic_version")):
                query = text(f"SELECT version_num FROM {table}")  # noqa: S608  # names from the inspector
                found[table] = [row[0] for row in conn.execute(query)]
        found["tables"] = sorted(tables)
        return found
    finally:
        engine.dispose()


def _keyscope_version_table(tmp_path: Path) -> str:
    probe = f"sqlite:///{tmp_path / 'probe.db'}"
    upgrade_keyscope(probe)
    tables = [t for t in _versions(probe) if t.endswith("alembic_version")]
    assert len(tables) == 1, tables
    return tables[0]


@pytest.mark.parametrize("project_table", ["adopter_alembic_version", "alembic_version"])
@pytest.mark.parametrize("keyscope_first", [True, False], ids=["keyscope-first", "project-first"])
def test_both_orders(
    backend: str,
    tmp_path: Path,
    keyscope_first: bool,
    project_table: str,
) -> None:
    """Each history reaches its head in its own version table, whichever runs first (also
    with the project on Alembic's default table name, once keyscope keeps a table of its own)."""
    keyscope_table = _keyscope_version_table(tmp_path)
    if project_table == keyscope_table:
        pytest.skip(
            f"this keyscope build keeps its revisions in {keyscope_table}, "
            f"not {KEYSCOPE_VERSION_TABLE}"
        )
    for url in fresh_database(backend, str(tmp_path)):
        steps = [upgrade_keyscope, lambda u: upgrade_project(u, project_table)]
        for step in steps if keyscope_first else reversed(steps):
            step(url)
        found = _versions(url)
        assert found[project_table] == ["adopter_0001"]
        assert len(found[keyscope_table]) == 1
        assert {"notes", "provider_keys"} <= set(found["tables"])


def test_keyscope_migrate_command_uses_the_shared_url(tmp_path: Path) -> None:
    """`keyscope migrate` (the installed console script) migrates KEYSCOPE_DATABASE_URL."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"KEYSCOPE_DATABASE_URL": url, "KEYSCOPE_STATE_DIR": str(tmp_path / "state"), "PATH": ""}
    script = Path(sys.executable).with_name("keyscope")
    result = subprocess.run(
        [str(script), "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "provider_keys" in _versions(url)["tables"]
    # Nothing but the database lands in the working directory (migrate needs no local secrets,
    # so it may not create the state directory at all).
    assert {p.name for p in tmp_path.iterdir()} - {"state"} == {"cli.db"}
