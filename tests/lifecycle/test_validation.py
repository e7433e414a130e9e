"""Validation on save and re-verification, against the loopback fakes."""

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import Engine

from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from tests.support.lifecycle import events_of, key_rows

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ("gemini", "reject-gemini-0123456789"),
        ("gemini", "forbidden-gemini-0123456789"),
        ("exa", "reject-exa-0123456789"),
    ],
)
async def test_a_key_the_provider_rejects_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine, provider: str, key: str
) -> None:
    """A definite rejection is a 422 problem naming the provider; no row, one audit event."""
    response = await client.put(f"/v1/keys/{provider}", json={"api_key": key}, headers=auth("al"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["provider"] == provider
    assert provider in body["detail"]
    assert "nothing was stored" in body["detail"]
    assert key not in response.text
    assert key_rows(clean_engine, "al") == []
    assert [e["action"] for e in events_of(clean_engine, "al")] == ["rejected-by-provider"]


async def test_gemini_check_lists_models_with_the_key_in_the_header(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Gemini's check is `GET …/models` with x-goog-api-key, never the key in the URL."""
    key = "AIza-any-format-at-all-0123456789"  # no prefix rules for Google keys
    response = await client.put("/v1/keys/gemini", json={"api_key": key}, headers=auth("al"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    (check,) = upstreams.records(ProviderName.GEMINI)
    assert check.method == "GET"
    assert check.path.split("?")[0].endswith("/models")
    assert check.key == key
    assert key not in check.path


async def test_exa_check_is_a_one_result_search(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """Exa's check is the cheapest authenticated call: one search result."""
    key = "exa-alice-0123456789"
    response = await client.put("/v1/keys/exa", json={"api_key": key}, headers=auth("al"))
    assert response.json()["status"] == "active"
    (check,) = upstreams.records(ProviderName.EXA)
    assert (check.method, check.path, check.key) == ("POST", "/search", key)
    assert check.json()["numResults"] == 1


async def test_a_provider_that_times_out_leaves_the_key_unverified(
    client: httpx.AsyncClient, auth: Auth, clean_engine: Engine
) -> None:
    """No answer in time: stored, status `unverified`, and the response says why."""
    response = await client.put(
        "/v1/keys/exa", json={"api_key": "slow-exa-0123456789"}, headers=auth("al")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "unverified"
    assert "did not answer in time" in body["status_reason"]
    assert [r["status"] for r in key_rows(clean_engine, "al")] == ["unverified"]
    listed = (await client.get("/v1/keys", headers=auth("al"))).json()["keys"]
    assert [k["status"] for k in listed] == ["unverified"]


@pytest.mark.parametrize("key", ["boom-0123456789", "ratelimit-0123456789"])
async def test_provider_errors_other_than_rejection_leave_the_key_unverified(
    client: httpx.AsyncClient, auth: Auth, key: str
) -> None:
    """A 5xx or a rate limit says nothing about the key: stored as `unverified`."""
    response = await client.put("/v1/keys/gemini", json={"api_key": key}, headers=auth("al"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "unverified"


async def test_validate_false_stores_unchecked(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """`?validate=false` makes no upstream call and stores the key as `unverified`."""
    response = await client.put(
        "/v1/keys/gemini?validate=false",
        json={"api_key": "reject-but-unchecked-0123"},
        headers=auth("al"),
    )
    assert response.status_code == 200
    assert response.json()["status"] == "unverified"
    assert upstreams.records() == []


async def test_copilotkit_public_key_is_stored_unverified(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams
) -> None:
    """A well-formed `ck_pub_` key is stored, honestly `unverified`: no check call exists."""
    response = await client.put(
        "/v1/keys/copilotkit", json={"api_key": "ck_pub_0123456789abcdef"}, headers=auth("al")
    )
    assert response.status_code == 200
    assert response.json()["status"] == "unverified"
    assert upstreams.records() == []


async def test_verify_rechecks_a_stored_key(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams, clean_engine: Engine
) -> None:
    """Verify marks a since-revoked key `invalid`, and `active` again once it works."""
    key = "gemini-alice-0123456789"
    await client.put("/v1/keys/gemini", json={"api_key": key}, headers=auth("al"))
    upstreams.behave(key, "reject")
    revoked = await client.post("/v1/keys/gemini/verify", headers=auth("al"))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "invalid"
    upstreams.behave(key, None)
    restored = await client.post("/v1/keys/gemini/verify", headers=auth("al"))
    assert restored.json()["status"] == "active"
    actions = [e["action"] for e in events_of(clean_engine, "al")]
    assert actions == ["stored", "verified", "rejected-by-provider", "verified"]


async def test_verify_without_a_key_is_404(client: httpx.AsyncClient, auth: Auth) -> None:
    """Verifying a key that is not stored is a 404 problem."""
    response = await client.post("/v1/keys/exa/verify", headers=auth("al"))
    assert response.status_code == 404
    assert response.json()["type"].endswith("/key-not-found")
