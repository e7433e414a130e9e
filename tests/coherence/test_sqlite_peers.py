"""Peers on one SQLite file: a write by one store is seen by the other's next read, while
the other users it caches stay cached."""

import threading
import time
from pathlib import Path

import pytest
from dependency_injector import providers as di
from sqlalchemy import event

from keyscope.app.awaitables import awaited
from keyscope.app.factories import build_coherence
from keyscope.app.keys.cache import RecordCache
from keyscope.app.keys.coherence import TRUST_WAIT_SECONDS, LocalOnly, SqliteRevisions
from keyscope.app.keys.records import UserRecords
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.migrate import upgrade
from keyscope.app.scope import request_scope
from keyscope.app.security.tokens import mint_token
from keyscope.containers import Container
from keyscope.providers import ProviderName
from tests.support.databases import sqlite_url
from tests.support.settings import JWT_SECRET, make_settings

pytestmark = pytest.mark.anyio


def _container(url: str, **overrides: str) -> Container:
    return Container(settings=di.Object(make_settings(url, **overrides)))


async def _key_seen(container: Container, user: str) -> str | None:
    token = mint_token(JWT_SECRET, user)
    with request_scope({"authorization": f"Bearer {token}"}):
        keys: UserKeys = await awaited(container.user_keys())
        resolved = keys.get(ProviderName.EXA)
        return resolved.secret.reveal() if resolved is not None else None


async def test_a_peer_write_is_seen_on_the_next_read(tmp_path: Path) -> None:
    """20 users x 10 writes (PUT and DELETE) by one store: the other store's next read is
    the new state every time, then served from its cache; other users stay cached."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    writer, reader = _container(url), _container(url)
    assert isinstance(reader.key_store().coherence, SqliteRevisions)
    await writer.key_store().put("bystander", ProviderName.EXA, "exa-bystander-0123456789")
    assert await _key_seen(reader, "bystander") == "exa-bystander-0123456789"
    cache = reader.record_cache()
    for write in range(10):
        for n in range(20):
            user = f"user-{n:02d}"
            expected: str | None = f"exa-{user}-{write}-0123456789"
            if write % 4 == 3:
                await writer.key_store().delete(user, ProviderName.EXA)
                expected = None
            else:
                await writer.key_store().put(user, ProviderName.EXA, str(expected))
            assert await _key_seen(reader, user) == expected
            assert await _key_seen(reader, user) == expected
            assert user in cache.snapshot()
            assert "bystander" in cache.snapshot()  # evicted per user, not flushed
    for container in (writer, reader):
        container.key_store().coherence.stop()
        container.engine().dispose()


async def test_after_a_peer_write_other_users_are_served_without_a_query(
    tmp_path: Path,
) -> None:
    """A commit by anyone makes the whole cache untrusted until the next catch-up; the users
    that catch-up did not evict are then served from the cache: no statement for them, one
    for the user who was written."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    writer, reader = _container(url), _container(url)
    for user in ("bystander", "written"):
        await writer.key_store().put(user, ProviderName.EXA, f"exa-{user}-old-0123456789")
        assert await _key_seen(reader, user) == f"exa-{user}-old-0123456789"
    statements: list[str] = []
    event.listen(reader.engine(), "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    await writer.key_store().put("written", ProviderName.EXA, "exa-written-new-0123456789")
    assert not reader.key_store().coherence.cache_trusted()
    assert await _key_seen(reader, "bystander") == "exa-bystander-old-0123456789"
    assert statements == []  # caught up (on its own connection), then served from the cache
    assert await _key_seen(reader, "written") == "exa-written-new-0123456789"
    assert len(statements) == 1
    for container in (writer, reader):
        container.key_store().coherence.stop()
        container.engine().dispose()


async def test_a_catch_up_in_progress_is_waited_for_briefly_not_routed_around(
    tmp_path: Path,
) -> None:
    """The warm check waits for a catch-up that holds the connection for a moment (instead of
    sending the request to the miss path, which under load snowballed into every request
    taking a worker thread), and gives up within its bound when the hold is long."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    writer, reader = _container(url), _container(url)
    await writer.key_store().put("u", ProviderName.EXA, "exa-u-0123456789")
    assert await _key_seen(reader, "u") == "exa-u-0123456789"
    coherence = reader.key_store().coherence
    assert isinstance(coherence, SqliteRevisions)
    assert coherence.cache_trusted()

    def hold(seconds: float, held: threading.Event) -> None:
        with coherence._lock:  # what a catch-up in a worker thread holds
            held.set()
            time.sleep(seconds)

    for seconds, trusted in ((TRUST_WAIT_SECONDS / 20, True), (0.2, False)):
        held = threading.Event()
        holder = threading.Thread(target=hold, args=(seconds, held))
        holder.start()
        held.wait()
        started = time.monotonic()
        assert coherence.cache_trusted() is trusted
        assert time.monotonic() - started < 0.1  # bounded: never the whole hold
        holder.join()
    for container in (writer, reader):
        container.key_store().coherence.stop()
        container.engine().dispose()


async def test_control_single_process_setting_serves_a_peers_stale_write(tmp_path: Path) -> None:
    """Control: told it is the only process, a store keeps serving what it cached."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    writer = _container(url)
    reader = _container(url, cache_coherence="single-process")
    await writer.key_store().put("u", ProviderName.EXA, "exa-old-0123456789")
    assert await _key_seen(reader, "u") == "exa-old-0123456789"
    await writer.key_store().put("u", ProviderName.EXA, "exa-new-0123456789")
    assert await _key_seen(reader, "u") == "exa-old-0123456789"
    for container in (writer, reader):
        container.engine().dispose()


def test_only_a_private_database_or_an_explicit_setting_skips_the_check(tmp_path: Path) -> None:
    """In-memory SQLite, a disabled cache or `single-process` use local eviction only; a
    SQLite file checks for peers by default."""
    cache: RecordCache[UserRecords] = RecordCache(ttl_seconds=30, max_users=10)
    off: RecordCache[UserRecords] = RecordCache(ttl_seconds=0, max_users=10)
    file_url = sqlite_url(tmp_path)
    assert isinstance(build_coherence(make_settings(file_url), cache), SqliteRevisions)
    assert isinstance(build_coherence(make_settings("sqlite:///:memory:"), cache), LocalOnly)
    assert isinstance(build_coherence(make_settings(file_url), off), LocalOnly)
    single = make_settings(file_url, cache_coherence="single-process")
    assert isinstance(build_coherence(single, cache), LocalOnly)
