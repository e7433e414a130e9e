"""Secrets never reach a log line or a response: a full API session is scanned for them."""

import logging
from collections.abc import Callable

import httpx
import pytest

pytestmark = pytest.mark.anyio

TokenFactory = Callable[..., str]


async def test_full_session_logs_no_key_or_token(
    client: httpx.AsyncClient, make_token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Every log record (all loggers, DEBUG) and every response body is free of keys and tokens."""
    keys = {
        "gemini": "AIzaSy-leakcheck-gemini-000111222",
        "exa": "exa-leakcheck-333444555666",
        "copilotkit": "ck_pub_leakcheck_777888999",
    }
    token = make_token("leak-checker")
    headers = {"Authorization": f"Bearer {token}"}
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for provider, key in keys.items():
            bodies.append(
                (
                    await client.put(f"/v1/keys/{provider}", json={"api_key": key}, headers=headers)
                ).text
            )
            bodies.append(
                (
                    await client.put(
                        f"/v1/keys/{provider}", json={"api_key": key + " x"}, headers=headers
                    )
                ).text
            )
            bodies.append(
                (await client.put("/v1/keys/nope", json={"api_key": key}, headers=headers)).text
            )
        bodies.append((await client.get("/v1/keys", headers=headers)).text)
        bodies.append(
            (await client.get("/v1/keys", headers={"Authorization": f"Bearer {token}x"})).text
        )
        for provider in keys:
            bodies.append((await client.delete(f"/v1/keys/{provider}", headers=headers)).text)
    text = caplog.text + "".join(bodies) + repr([r.args for r in caplog.records])
    assert "key stored" in caplog.text  # the audit lines were captured
    for secret in [*keys.values(), token, token.split(".")[2]]:
        assert secret not in text
