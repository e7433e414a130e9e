"""`keyscope rotate`: re-wraps every data key under the primary, survives kill -9, is idempotent."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, insert, select

from keyscope.app.keys.models import provider_keys
from keyscope.app.security.envelope import EnvelopeCipher, Sealed
from keyscope.app.security.keyring import Keyring
from tests.support.settings import JWT_SECRET, MASTER_KEY_K1, MASTER_KEY_K2

ROWS = 3000


def _seed(engine: Engine, rows: int) -> str:
    """Insert `rows` keys sealed under k1; return the digest of all plaintexts."""
    cipher = EnvelopeCipher(Keyring.parse(MASTER_KEY_K1))
    now = datetime.now(UTC)
    values = []
    for i in range(rows):
        user, provider, secret = (
            f"user-{i:05d}",
            ("gemini", "exa", "copilotkit")[i % 3],
            f"secret-{i:05d}-abcdefghij",
        )
        sealed = cipher.seal(secret, owner=user, provider=provider)
        values.append(
            {
                "user_id": user,
                "provider": provider,
                "ciphertext": sealed.ciphertext,
                "wrapped_key": sealed.wrapped_key,
                "key_id": sealed.key_id,
                "format_version": sealed.format_version,
                "last4": secret[-4:],
                "fingerprint": "0" * 16,
                "status": "active",
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(provider_keys), values)
    return _digest(engine, f"{MASTER_KEY_K2},{MASTER_KEY_K1}")


def _digest(engine: Engine, keyring: str) -> str:
    cipher = EnvelopeCipher(Keyring.parse(keyring))
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for row in conn.execute(select(provider_keys).order_by(provider_keys.c.id)).mappings():
            sealed = Sealed(
                bytes(row["ciphertext"]),
                bytes(row["wrapped_key"]),
                row["key_id"],
                row["format_version"],
            )
            digest.update(
                cipher.open(sealed, owner=row["user_id"], provider=row["provider"]).encode()
            )
    return digest.hexdigest()


def _count(engine: Engine, kid: str) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(provider_keys).where(provider_keys.c.key_id == kid)
        return int(conn.execute(query).scalar_one())


def _rotate(database_url: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KEYSCOPE_DEPLOY_ENV": "production",
        "KEYSCOPE_DATABASE_URL": database_url,
        "KEYSCOPE_MASTER_KEYS": f"{MASTER_KEY_K2},{MASTER_KEY_K1}",
        "KEYSCOPE_JWT_SECRET": JWT_SECRET,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "keyscope.app.cli", "rotate", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_rotation_survives_kill_9_and_is_idempotent(
    clean_engine: Engine, database_url: str
) -> None:
    """Killed three times mid-run, rerun to the end: every row under k2, every plaintext intact."""
    before = _seed(clean_engine, ROWS)
    dry = _rotate(database_url, "--dry-run")
    out, _ = dry.communicate(timeout=60)
    assert dry.returncode == 0, out
    assert f"{ROWS} key(s) would be re-wrapped" in out
    assert _count(clean_engine, "k2") == 0

    kills = 0
    for _ in range(3):
        progress = _count(clean_engine, "k2")
        process = _rotate(database_url, "--batch-size", "10")
        deadline = time.monotonic() + 60
        while _count(clean_engine, "k2") <= progress and process.poll() is None:
            assert time.monotonic() < deadline, "rotation made no progress"
            time.sleep(0.01)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=30)
        assert _digest(clean_engine, f"{MASTER_KEY_K2},{MASTER_KEY_K1}") == before
    assert kills >= 1, "every run finished before it could be killed: raise ROWS"

    final = _rotate(database_url)
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, out
    assert "k2" in out
    assert "primary" in out
    assert _count(clean_engine, "k2") == ROWS
    assert _digest(clean_engine, MASTER_KEY_K2) == before  # k1 no longer needed

    again = _rotate(database_url)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out
    assert "re-wrapped" not in out  # nothing left to do


def test_rotation_reports_missing_key_ids(clean_engine: Engine, database_url: str) -> None:
    """Rows under a key id absent from the keyring are named and make rotate exit non-zero."""
    _seed(clean_engine, 3)
    with clean_engine.begin() as conn:
        conn.execute(provider_keys.update().values(key_id="lost"))
    process = _rotate(database_url)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "lost" in out
    assert "MISSING" in out
    assert "3 key(s) use master key ids not in the keyring: lost" in " ".join(out.split())
