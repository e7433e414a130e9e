"""schemathesis 4.x against a live server: every operation, no 5xx, every answer as documented."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from keyscope.app.live_server import live_server
from keyscope.app.main import create_app
from keyscope.containers import Container

Auth = Callable[[str], dict[str, str]]
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


def test_schemathesis_finds_no_server_error_or_nonconformance(
    container: Container, auth: Auth, tmp_path: Path
) -> None:
    """A bounded run (fixed seed, a few examples per operation) with a bearer token: 0 failures.

    The user starts with a working key for each provider, so provider routes reach the fake
    upstreams; schemathesis may replace or delete them along the way."""
    headers = auth("schemathesis-user")
    with live_server(create_app(container)) as base_url:
        with httpx.Client(base_url=base_url, headers=headers) as client:
            for provider, key in (
                ("gemini", "gemini-key-0123456789"),
                ("exa", "exa-key-0123456789"),
                ("copilotkit", "ck_pub_0123456789"),
            ):
                client.put(f"/v1/keys/{provider}", json={"api_key": key}).raise_for_status()
        command = [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{base_url}/openapi.json",
            "--header",
            f"Authorization:{headers['Authorization']}",
            "--checks",
            CHECKS,
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "10",
            "--no-color",
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
