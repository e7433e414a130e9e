"""The keys API: store, list masked, replace, delete; bad input is a 4xx that stores nothing."""

import asyncio
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import Engine, func, select

from keyscope.app.keys.models import provider_keys

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
GEMINI_KEY = "AIzaSy-alice-gemini-0123456789"


async def test_put_then_list_shows_the_key_masked(client: httpx.AsyncClient, auth: Auth) -> None:
    """A stored key comes back as provider, last4 and fingerprint, never in plaintext."""
    put = await client.put("/v1/keys/gemini", json={"api_key": GEMINI_KEY}, headers=auth("alice"))
    assert put.status_code == 200
    body = put.json()
    assert body["provider"] == "gemini"
    assert body["last4"] == "6789"
    assert body["status"] == "active"
    assert len(body["fingerprint"]) == 16
    listed = await client.get("/v1/keys", headers=auth("alice"))
    assert listed.status_code == 200
    assert listed.json() == {"keys": [body]}
    assert GEMINI_KEY not in put.text + listed.text


async def test_replace_keeps_one_row_and_changes_fingerprint(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine
) -> None:
    """PUT twice replaces: one row, created_at kept, updated_at and fingerprint move."""
    first = (
        await client.put(
            "/v1/keys/exa", json={"api_key": "exa-one-0123456789"}, headers=auth("alice")
        )
    ).json()
    second = (
        await client.put(
            "/v1/keys/exa", json={"api_key": "exa-two-0123456789"}, headers=auth("alice")
        )
    ).json()
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]
    assert second["fingerprint"] != first["fingerprint"]
    assert _row_count(clean_engine) == 1


async def test_users_see_only_their_own_keys(client: httpx.AsyncClient, auth: Auth) -> None:
    """Bob's list is empty after Alice stores a key; Bob cannot delete Alice's key."""
    await client.put("/v1/keys/gemini", json={"api_key": GEMINI_KEY}, headers=auth("alice"))
    assert (await client.get("/v1/keys", headers=auth("bob"))).json() == {"keys": []}
    assert (await client.delete("/v1/keys/gemini", headers=auth("bob"))).status_code == 404
    assert len((await client.get("/v1/keys", headers=auth("alice"))).json()["keys"]) == 1


async def test_delete_then_404(client: httpx.AsyncClient, auth: Auth) -> None:
    """DELETE answers 204 once, then a 404 problem."""
    await client.put(
        "/v1/keys/copilotkit", json={"api_key": "ck_pub_0123456789abcdef"}, headers=auth("alice")
    )
    first = await client.delete("/v1/keys/copilotkit", headers=auth("alice"))
    assert first.status_code == 204
    second = await client.delete("/v1/keys/copilotkit", headers=auth("alice"))
    assert second.status_code == 404
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["type"].endswith("/key-not-found")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_unknown_provider_is_404(client: httpx.AsyncClient, auth: Auth, method: str) -> None:
    """A provider keyscope does not manage is a 404 problem naming the known ones."""
    response = await client.request(
        method, "/v1/keys/openai", json={"api_key": "sk-0123456789abcdef"}, headers=auth("alice")
    )
    assert response.status_code == 404
    assert "gemini, exa, copilotkit" in response.json()["detail"]


BAD_BODIES: list[tuple[str, bytes]] = [
    ("empty", b'{"api_key": ""}'),
    ("whitespace only", b'{"api_key": "   "}'),
    ("inner space", b'{"api_key": "abc def-0123456789"}'),
    ("newline", b'{"api_key": "abc-0123456789\\n"}'),
    ("control character", b'{"api_key": "abc\\u0007-0123456789"}'),
    ("non-ascii", '{"api_key": "abc\u201c-0123456789"}'.encode()),
    ("over 4 KiB", b'{"api_key": "' + b"a" * 4097 + b'"}'),
    ("number", b'{"api_key": 1234567890123}'),
    ("list", b'{"api_key": ["a"]}'),
    ("null", b'{"api_key": null}'),
    ("missing field", b"{}"),
    ("extra field", b'{"api_key": "abc-0123456789", "keep": true}'),
    ("malformed json", b'{"api_key": "abc-0123'),
    ("not an object", b'"abc-0123456789"'),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
async def test_bad_body_is_422_and_stores_nothing(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine, case: str, body: bytes
) -> None:
    """Each malformed PUT body is a 422 problem that echoes no input and stores nothing."""
    response = await client.put(
        "/v1/keys/gemini",
        content=body,
        headers={**auth("alice"), "content-type": "application/json"},
    )
    assert response.status_code == 422, case
    problem = response.json()
    assert problem["status"] == 422
    assert all("input" not in error for error in problem["errors"])
    assert "0123456789" not in response.text
    assert _row_count(clean_engine) == 0


async def test_concurrent_puts_leave_one_row(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine
) -> None:
    """Forty concurrent PUTs for one user and provider: all 200, exactly one row, the last wins."""
    headers = auth("alice")
    keys = [f"gemini-concurrent-{i:04d}-0123456789" for i in range(40)]
    responses = await asyncio.gather(
        *(client.put("/v1/keys/gemini", json={"api_key": k}, headers=headers) for k in keys)
    )
    assert [r.status_code for r in responses] == [200] * len(keys)
    assert _row_count(clean_engine) == 1
    listed = (await client.get("/v1/keys", headers=headers)).json()["keys"]
    assert listed[0]["fingerprint"] in {r.json()["fingerprint"] for r in responses}


async def test_put_invalidates_the_cached_records(client: httpx.AsyncClient, auth: Auth) -> None:
    """A GET after a PUT shows the new fingerprint even though the first GET filled the cache."""
    headers = auth("alice")
    await client.put("/v1/keys/exa", json={"api_key": "exa-first-0123456789"}, headers=headers)
    before = (await client.get("/v1/keys", headers=headers)).json()["keys"][0]["fingerprint"]
    await client.put("/v1/keys/exa", json={"api_key": "exa-second-0123456789"}, headers=headers)
    after = (await client.get("/v1/keys", headers=headers)).json()["keys"][0]["fingerprint"]
    assert before != after


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient, auth: Auth) -> None:
    """Framework errors (404, 405) are problem+json too."""
    missing = await client.get("/v1/nothing-here", headers=auth("alice"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await client.post("/v1/keys", headers=auth("alice"))
    assert wrong.status_code == 405
    assert wrong.json()["status"] == 405


def _row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(provider_keys)).scalar_one())
