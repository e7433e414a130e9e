"""keyscope's Alembic history shares a database with the host's own, in either order."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from keyscope.app.migrate import VERSION_TABLE, head_revisions, upgrade
from tests.db.host_history import HOST_HEAD, host_downgrade, host_upgrade
from tests.support.databases import postgres_database, sqlite_url


@contextmanager
def _sqlite(directory: Path) -> Iterator[str]:
    yield sqlite_url(directory)


DATABASES: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
    "sqlite": _sqlite,
    "postgres": lambda _directory: postgres_database(),
}


@pytest.fixture(params=sorted(DATABASES))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine."""
    with DATABASES[request.param](tmp_path) as database_url:
        yield database_url


def _versions(url: str, table: str) -> set[str] | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if table not in inspect(conn).get_table_names():
                return None
            return set(conn.execute(text(f"SELECT version_num FROM {table}")).scalars())  # noqa: S608
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _assert_both_at_head(url: str) -> None:
    assert _versions(url, VERSION_TABLE) == set(head_revisions())
    assert _versions(url, "alembic_version") == {HOST_HEAD}
    assert {"provider_keys", "host_items", "host_notes"} <= _tables(url)


def test_keyscope_first_then_host(url: str, tmp_path: Path) -> None:
    """keyscope migrated first, the host's history after it: both reach head, reruns no-op."""
    upgrade(url)
    host_upgrade(tmp_path, url)
    _assert_both_at_head(url)
    upgrade(url)
    host_upgrade(tmp_path, url)
    _assert_both_at_head(url)


def test_host_first_then_keyscope(url: str, tmp_path: Path) -> None:
    """The host's history first (same short revision id as keyscope's), keyscope after it."""
    host_upgrade(tmp_path, url)
    upgrade(url)
    _assert_both_at_head(url)
    upgrade(url)
    _assert_both_at_head(url)


def test_host_downgrade_leaves_keyscope_alone(url: str, tmp_path: Path) -> None:
    """The host downgrading its whole history removes none of keyscope's tables or versions."""
    upgrade(url)
    host_upgrade(tmp_path, url)
    host_downgrade(tmp_path, url)
    assert _versions(url, VERSION_TABLE) == set(head_revisions())
    assert "provider_keys" in _tables(url)
    assert not {"host_items", "host_notes"} & _tables(url)


def _record_in_default_table(url: str, extra_rows: tuple[str, ...] = ()) -> None:
    """Rewind to how older keyscope recorded itself: its revision in `alembic_version`."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        for revision in (*sorted(head_revisions()), *extra_rows):
            conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})
        conn.execute(
            text(
                "INSERT INTO provider_keys (user_id, provider, ciphertext, wrapped_key, key_id,"
                " format_version, last4, fingerprint, status, created_at, updated_at) VALUES"
                " ('u1', 'gemini', :b, :b, 'k1', 1, 'abcd', 'f', 'active',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"b": b"x"},
        )
    engine.dispose()


def _provider_key_rows(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM provider_keys")).scalar_one())
    engine.dispose()
    return count


def test_existing_deployment_moves_its_revision_once(url: str) -> None:
    """A deployment recorded in `alembic_version` is moved to keyscope's table, data intact."""
    upgrade(url)
    _record_in_default_table(url)
    upgrade(url)
    assert _versions(url, VERSION_TABLE) == set(head_revisions())
    assert _versions(url, "alembic_version") is None  # it held keyscope's row alone
    assert _provider_key_rows(url) == 1
    upgrade(url)
    assert _versions(url, VERSION_TABLE) == set(head_revisions())


def test_existing_deployment_never_touches_host_rows(url: str) -> None:
    """Only keyscope's row leaves `alembic_version`; a host revision beside it stays."""
    upgrade(url)
    _record_in_default_table(url, extra_rows=("host_abc123",))
    upgrade(url)
    assert _versions(url, VERSION_TABLE) == set(head_revisions())
    assert _versions(url, "alembic_version") == {"host_abc123"}
    assert _provider_key_rows(url) == 1


def test_host_revision_sharing_keyscope_id_is_not_taken(url: str, tmp_path: Path) -> None:
    """A host row "0001" without keyscope's tables is the host's: keyscope migrates from base."""
    host_upgrade(tmp_path, url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    upgrade(url)
    assert _versions(url, "alembic_version") == {"0001"}
    assert _versions(url, VERSION_TABLE) == set(head_revisions())
