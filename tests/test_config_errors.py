"""Configuration errors end the real CLI and uvicorn with one stderr line and exit 2."""

import os
import subprocess
import sys
from pathlib import Path

from keyscope.app.security.keyring import Keyring
from tests.support.settings import JWT_SECRET, MASTER_KEY_K1

BLOCK_PSYCOPG = "import sys; sys.modules['psycopg'] = None; "


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYSCOPE_", "DEPLOY_ENV"))}
    env.update(extra)
    return env


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=60, check=False
    )


def _keyscope(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "keyscope.app.cli", *args], cwd, **env)


def _one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_invalid_deploy_env_is_one_line(tmp_path: Path) -> None:
    """KEYSCOPE_DEPLOY_ENV=prod names the variable and the allowed values, no traceback."""
    result = _keyscope("serve", "--port", "0", cwd=tmp_path, KEYSCOPE_DEPLOY_ENV="prod")
    line = _one_line(result, "KEYSCOPE_DEPLOY_ENV", "'local' or 'production'")
    assert "prod'" not in line.replace("'production'", "")  # the rejected value is not echoed


def test_uvicorn_without_keyring_in_production_is_one_line(tmp_path: Path) -> None:
    """`uvicorn keyscope.app.asgi:app` in production without a keyring: one line, exit 2."""
    argv = [sys.executable, "-m", "uvicorn", "keyscope.app.asgi:app", "--port", "0"]
    result = _run(argv, tmp_path, KEYSCOPE_DEPLOY_ENV="production", KEYSCOPE_JWT_SECRET=JWT_SECRET)
    _one_line(result, "KEYSCOPE_MASTER_KEYS")


def test_malformed_keyring_is_reported_before_migrating(tmp_path: Path) -> None:
    """`keyscope serve` with a bad keyring fails before it creates or migrates the database."""
    database = tmp_path / "state" / "keyscope.db"
    result = _keyscope(
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        KEYSCOPE_DEPLOY_ENV="production",
        KEYSCOPE_MASTER_KEYS="k1:not-base64!",
        KEYSCOPE_JWT_SECRET=JWT_SECRET,
        KEYSCOPE_DATABASE_URL=f"sqlite:///{database}",
    )
    line = _one_line(result, "KEYSCOPE_MASTER_KEYS entry 1 (k1)")
    assert "not-base64" not in line
    assert not database.parent.exists()


def test_postgres_url_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    """A PostgreSQL URL with psycopg missing says to install keyscope[postgres]."""
    code = (
        BLOCK_PSYCOPG
        + "sys.argv = ['keyscope', 'migrate']; from keyscope.app.cli import main; main()"
    )
    result = _run(
        [sys.executable, "-c", code],
        tmp_path,
        KEYSCOPE_DATABASE_URL="postgresql+psycopg://postgres:s3cret@127.0.0.1:9/none",
    )
    line = _one_line(result, "keyscope[postgres]", "psycopg")
    assert "s3cret" not in line


def test_keygen_prints_an_entry_the_keyring_accepts(tmp_path: Path) -> None:
    """`keyscope keygen NEWID` (as the README writes it) prints a parseable 32-byte entry."""
    result = _keyscope("keygen", "NEWID", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entry = result.stdout.strip()
    keyring = Keyring.parse(f"{entry},{MASTER_KEY_K1}")
    assert keyring.primary_id == "NEWID"
    assert len(keyring.primary) == 32
    assert _keyscope("keygen", "NEWID", cwd=tmp_path).stdout.strip() != entry


def test_keygen_rejects_a_bad_key_id(tmp_path: Path) -> None:
    """A KID the keyring would refuse is refused at once, exit 2."""
    _one_line(_keyscope("keygen", "a:b", cwd=tmp_path), "KID")


def test_keygen_jwt_secret_is_long_enough_for_production(tmp_path: Path) -> None:
    """`keyscope keygen --jwt-secret` prints a secret production accepts (>= 32 characters)."""
    result = _keyscope("keygen", "--jwt-secret", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert len(secret) >= 32
    assert ":" not in secret


def test_uvicorn_with_postgres_url_without_psycopg_is_one_line(tmp_path: Path) -> None:
    """Under uvicorn too, a missing psycopg is one line at import, not a lifespan traceback."""
    code = BLOCK_PSYCOPG + (
        "import uvicorn; sys.argv = ['uvicorn', 'keyscope.app.asgi:app', '--port', '0']; "
        "uvicorn.main()"
    )
    result = _run(
        [sys.executable, "-c", code],
        tmp_path,
        KEYSCOPE_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:9/none",
        KEYSCOPE_MASTER_KEYS=MASTER_KEY_K1,
        KEYSCOPE_JWT_SECRET=JWT_SECRET,
    )
    _one_line(result, "keyscope[postgres]")
