"""The README quick start, for real: `keyscope serve` on a port, a minted token, PUT, GET."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.settings import JWT_SECRET, MASTER_KEY_K1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keyscope(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyscope.app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYSCOPE_", "DEPLOY_ENV"))}
    env.update(extra)
    return env


@pytest.mark.slow
def test_quick_start_in_local_mode(tmp_path: Path) -> None:
    """Local mode: serve migrates, a token minted in another directory works, PUT/GET over HTTP,
    and nothing is written into either working directory (all of it goes to the state dir)."""
    state = tmp_path / "state"
    env = _clean_env(XDG_STATE_HOME=str(state))
    served_from, minted_from = tmp_path / "project", tmp_path / "elsewhere"
    served_from.mkdir()
    minted_from.mkdir()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "keyscope.app.cli", "serve", "--port", str(port)],
        cwd=served_from,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        minted = _keyscope("token", "alice", cwd=minted_from, env=env)
        assert minted.returncode == 0, minted.stderr
        assert str(state / "keyscope" / "dev-jwt-secret") in minted.stderr
        token = minted.stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        put = httpx.put(
            f"{base}/v1/keys/gemini", json={"api_key": "AIzaSy-quickstart-0123"}, headers=headers
        )
        assert put.status_code == 200, put.text
        listed = httpx.get(f"{base}/v1/keys", headers=headers).json()
        assert listed["keys"][0]["last4"] == "0123"
        assert (state / "keyscope" / "keyscope.db").exists()
        assert list(served_from.iterdir()) == []
        assert list(minted_from.iterdir()) == []
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "LOCAL MODE" in output
    assert "AIzaSy-quickstart-0123" not in output
    assert token not in output
    assert '"PUT /v1/keys/gemini' not in output  # the access log is off by default


@pytest.mark.slow
def test_serve_with_workers_warns_about_per_worker_caches(tmp_path: Path) -> None:
    """Several workers told they are alone (`single-process`) with the record cache on: serve
    says a replaced key may linger."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "keyscope.app.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=_clean_env(KEYSCOPE_CACHE_COHERENCE="single-process"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            seen.append(line)
            if "through)" in line or "Started" in line or not line:  # warning's end, or uvicorn
                break
    finally:
        server.terminate()
        rest, _ = server.communicate(timeout=30)
    output = " ".join("".join([*seen, rest]).split())  # rich wraps long lines
    assert "2 workers each cache encrypted key records" in output, output
    assert "KEYSCOPE_KEY_CACHE_TTL=0" in output


def test_production_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    """Production without a keyring exits 2 with one line naming KEYSCOPE_MASTER_KEYS."""
    env = _clean_env(KEYSCOPE_DEPLOY_ENV="production", KEYSCOPE_JWT_SECRET=JWT_SECRET)
    result = _keyscope("serve", "--no-migrate", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "KEYSCOPE_MASTER_KEYS is required in production" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_token_mints_a_verifiable_token(tmp_path: Path) -> None:
    """`keyscope token SUB --ttl` prints an HS256 token for SUB with that lifetime."""
    env = _clean_env(
        KEYSCOPE_DEPLOY_ENV="production",
        KEYSCOPE_JWT_SECRET=JWT_SECRET,
        KEYSCOPE_MASTER_KEYS=MASTER_KEY_K1,
    )
    result = _keyscope("token", "bob", "--ttl", "120", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert claims["exp"] - claims["iat"] == 120


def test_token_without_secret_is_a_clear_error(tmp_path: Path) -> None:
    """With only a JWKS configured there is no secret to sign with: exit 2 and say so."""
    env = _clean_env(
        KEYSCOPE_DEPLOY_ENV="production",
        KEYSCOPE_MASTER_KEYS=MASTER_KEY_K1,
        KEYSCOPE_JWT_JWKS_URL="http://127.0.0.1:9/jwks",
    )
    result = _keyscope("token", "bob", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "KEYSCOPE_JWT_SECRET" in result.stderr


def test_demo_reports_zero_wrong_keys() -> None:
    """`keyscope demo` on loopback fakes: every upstream call carried its user's key."""
    import io

    from rich.console import Console

    from keyscope.app.demo import run_demo

    out = io.StringIO()
    problems = run_demo(6, 4, Console(file=out, width=120))
    assert problems == 0
    text = out.getvalue()
    assert "24 concurrent requests" in text
    assert "0 wrong keys" in text
