"""Health states during use: rejected keys become `invalid`, expired keys are refused (409),
unreadable keys are recorded; none of them is ever replaced by the platform key."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, update

from keyscope.app.keys.models import provider_keys
from keyscope.app.settings import Settings
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from tests.support.lifecycle import app_client, events_of, key_rows, lifecycle_settings

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
PLATFORM_GEMINI = "platform-gemini-0123456789"
GENERATE = "/v1/gemini/generate"


def _with_platform_fallback(database_url: str, upstreams: FakeUpstreams) -> Settings:
    return lifecycle_settings(
        database_url,
        upstreams,
        gemini_api_key=SecretStr(PLATFORM_GEMINI),
        platform_fallback="gemini",
    )


async def test_a_key_rejected_during_use_becomes_invalid_and_is_refused_next(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams, clean_engine: Engine
) -> None:
    """First use after revocation: 422 and status `invalid`; next use: 409, no upstream call."""
    key = "gemini-alice-0123456789"
    await client.put("/v1/keys/gemini", json={"api_key": key}, headers=auth("al"))
    upstreams.clear()
    upstreams.behave(key, "reject")  # revoked after it was stored
    first = await client.post(GENERATE, json={"prompt": "hi"}, headers=auth("al"))
    assert first.status_code == 422
    assert len(upstreams.records(ProviderName.GEMINI)) == 1
    listed = (await client.get("/v1/keys", headers=auth("al"))).json()["keys"]
    assert [k["status"] for k in listed] == ["invalid"]
    second = await client.post(GENERATE, json={"prompt": "hi"}, headers=auth("al"))
    assert second.status_code == 409
    assert second.json()["type"].endswith("/key-invalid")
    assert len(upstreams.records(ProviderName.GEMINI)) == 1  # refused without a round trip
    (row,) = key_rows(clean_engine, "al")
    rejected = [e for e in events_of(clean_engine, "al") if e["action"] == "rejected-by-provider"]
    assert [e["fingerprint"] for e in rejected] == [row["fingerprint"]]
    replaced = await client.put(
        "/v1/keys/gemini", json={"api_key": "gemini-alice-new-0123456789"}, headers=auth("al")
    )
    assert replaced.json()["status"] == "active"
    again = await client.post(GENERATE, json={"prompt": "hi"}, headers=auth("al"))
    assert again.status_code == 200


async def test_an_invalid_key_is_never_replaced_by_the_platform_key(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """Even where the fallback policy serves key-less users, an invalid key stays refused."""
    upstreams.clear()
    settings = _with_platform_fallback(database_url, upstreams)
    async with app_client(settings, clean_engine) as (client, _):
        await client.put(
            "/v1/keys/gemini?validate=false",
            json={"api_key": "reject-0123456789"},
            headers=auth("al"),
        )
        assert (
            await client.post(GENERATE, json={"prompt": "x"}, headers=auth("al"))
        ).status_code == 422
        refused = await client.post(GENERATE, json={"prompt": "x"}, headers=auth("al"))
        assert refused.status_code == 409
        keyless = await client.post(GENERATE, json={"prompt": "x"}, headers=auth("bo"))
        assert keyless.status_code == 200  # the policy itself still works for bo
    keys = [r.key for r in upstreams.records(ProviderName.GEMINI)]
    assert keys == ["reject-0123456789", PLATFORM_GEMINI]


async def test_an_expired_key_is_409_and_never_the_platform_key(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """Past `expires_at`: a 409 problem, shown `expired`, and no upstream call at all."""
    upstreams.clear()
    settings = _with_platform_fallback(database_url, upstreams)
    async with app_client(settings, clean_engine) as (client, _):
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        put = await client.put(
            "/v1/keys/gemini",
            json={"api_key": "gemini-alice-0123456789", "expires_at": soon},
            headers=auth("al"),
        )
        assert put.status_code == 200
        assert datetime.fromisoformat(put.json()["expires_at"]) > datetime.now(UTC)
        with clean_engine.begin() as conn:
            conn.execute(
                update(provider_keys).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        upstreams.clear()
        response = await client.post(GENERATE, json={"prompt": "x"}, headers=auth("al"))
        assert response.status_code == 409
        assert response.json()["type"].endswith("/key-expired")
        assert "PUT /v1/keys/gemini" in response.json()["detail"]
        listed = (await client.get("/v1/keys", headers=auth("al"))).json()["keys"]
        assert [k["status"] for k in listed] == ["expired"]
    assert upstreams.records() == []


async def test_expires_at_in_the_past_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    """A key that would be expired on arrival is refused, and so is a naive timestamp."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await client.put(
        "/v1/keys/exa", json={"api_key": "exa-0123456789ab", "expires_at": past}, headers=auth("al")
    )
    assert response.status_code == 422
    naive = await client.put(
        "/v1/keys/exa",
        json={"api_key": "exa-0123456789ab", "expires_at": "2099-01-01T00:00:00"},
        headers=auth("al"),
    )
    assert naive.status_code == 422


async def test_an_unreadable_key_is_recorded(
    client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams, clean_engine: Engine
) -> None:
    """A ciphertext that fails to open: 409, status `unreadable`, an `unreadable` event."""
    await client.put(
        "/v1/keys/gemini", json={"api_key": "gemini-al-0123456789"}, headers=auth("al")
    )
    (row,) = key_rows(clean_engine, "al")
    tampered = bytes([row["ciphertext"][0] ^ 1]) + bytes(row["ciphertext"][1:])
    with clean_engine.begin() as conn:
        conn.execute(update(provider_keys).values(ciphertext=tampered))
    upstreams.clear()
    response = await client.post(GENERATE, json={"prompt": "x"}, headers=auth("al"))
    assert response.status_code == 409
    assert response.json()["type"].endswith("/key-unreadable")
    assert upstreams.records() == []
    listed = (await client.get("/v1/keys", headers=auth("al"))).json()["keys"]
    assert [k["status"] for k in listed] == ["unreadable"]
    unreadable = [e for e in events_of(clean_engine, "al") if e["action"] == "unreadable"]
    assert [e["fingerprint"] for e in unreadable] == [row["fingerprint"]]
