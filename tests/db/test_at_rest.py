"""Keys at rest: no plaintext in the database file, and rows bound to their owner."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import make_url

from keyscope.app.awaitables import awaited
from keyscope.app.errors import KeyUnreadable
from keyscope.app.keys.models import provider_keys
from keyscope.app.keys.user_keys import UserKeys
from keyscope.app.scope import request_scope
from keyscope.containers import Container
from keyscope.providers import ProviderName

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
ALICE_KEY = "alice-secret-gemini-key-0123456789"
BOB_KEY = "bob-secret-gemini-key-9876543210"


async def test_sqlite_file_holds_no_plaintext(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine, database_url: str
) -> None:
    """The raw bytes of the SQLite database (and its WAL) never contain a stored key."""
    if not database_url.startswith("sqlite"):
        pytest.skip("raw-file check applies to the SQLite file; PostgreSQL stores the same bytes")
    keys = {f"user-{i}": f"plaintext-marker-{i:03d}-abcdefghijklmnop" for i in range(20)}
    for user, key in keys.items():
        response = await client.put("/v1/keys/exa", json={"api_key": key}, headers=auth(user))
        assert response.status_code == 200
    path = Path(make_url(database_url).database or "")
    raw = _read_in_child(sorted(path.parent.glob(path.name + "*")))
    assert b"plaintext-marker" not in raw
    assert b"user-7" in raw  # the check reads the right file


def _read_in_child(files: list[Path]) -> bytes:
    """The files' bytes, read by a child process: closing a file descriptor on a SQLite file
    drops every POSIX lock this process holds on it, which corrupts the live connections'
    view of the WAL index (SQLite's documented hazard)."""
    script = "import sys; [sys.stdout.buffer.write(open(f, 'rb').read()) for f in sys.argv[1:]]"
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, files)], capture_output=True, check=True
    ).stdout


async def _resolve(container: Container, token_headers: dict[str, str]) -> str:
    with request_scope({k.lower(): v for k, v in token_headers.items()}):
        keys: UserKeys = await awaited(container.user_keys())
        return keys.require(ProviderName.GEMINI).secret.reveal()


async def test_copied_ciphertext_does_not_open_for_another_user(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine, container: Container
) -> None:
    """Alice's ciphertext pasted onto Bob's row fails closed for Bob, never yielding her key."""
    await client.put("/v1/keys/gemini", json={"api_key": ALICE_KEY}, headers=auth("alice"))
    await client.put("/v1/keys/gemini", json={"api_key": BOB_KEY}, headers=auth("bob"))
    assert await _resolve(container, auth("bob")) == BOB_KEY
    columns = provider_keys.c
    with clean_engine.begin() as conn:
        alice = conn.execute(
            select(columns.ciphertext, columns.wrapped_key).where(columns.user_id == "alice")
        ).one()
        conn.execute(
            update(provider_keys)
            .where(columns.user_id == "bob")
            .values(ciphertext=alice.ciphertext, wrapped_key=alice.wrapped_key)
        )
    container.record_cache().clear()
    with pytest.raises(KeyUnreadable) as caught:
        await _resolve(container, auth("bob"))
    assert ALICE_KEY not in str(caught.value)
    assert "'k1'" in caught.value.detail
    assert await _resolve(container, auth("alice")) == ALICE_KEY


async def test_tampered_and_unknown_key_id_fail_closed(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine, container: Container
) -> None:
    """A flipped byte, or a key id missing from the keyring, is a clear error naming the id."""
    await client.put("/v1/keys/gemini", json={"api_key": ALICE_KEY}, headers=auth("alice"))
    columns = provider_keys.c
    with clean_engine.begin() as conn:
        blob = conn.execute(select(columns.ciphertext)).scalar_one()
        flipped = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
        conn.execute(update(provider_keys).values(ciphertext=flipped))
    container.record_cache().clear()
    with pytest.raises(KeyUnreadable, match="failed authentication"):
        await _resolve(container, auth("alice"))
    with clean_engine.begin() as conn:
        conn.execute(update(provider_keys).values(key_id="retired"))
    container.record_cache().clear()
    with pytest.raises(KeyUnreadable, match=r"'retired'.*not in the keyring"):
        await _resolve(container, auth("alice"))


async def test_cache_holds_ciphertext_only(
    client: httpx.AsyncClient, auth: Auth, container: Container
) -> None:
    """After a request decrypts a key, the record cache still holds no plaintext."""
    await client.put("/v1/keys/gemini", json={"api_key": ALICE_KEY}, headers=auth("alice"))
    assert await _resolve(container, auth("alice")) == ALICE_KEY
    cached = container.record_cache().snapshot()
    assert "alice" in cached
    assert ALICE_KEY not in repr(cached)
    record = cached["alice"][ProviderName.GEMINI]
    assert ALICE_KEY.encode() not in record.sealed.ciphertext
