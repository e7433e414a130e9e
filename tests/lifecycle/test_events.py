"""The audit trail: every action appears with the right fingerprint, newest first, paged, and
no key material ever reaches the table."""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text, update

from keyscope.app.keys.models import key_events, provider_keys
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams
from tests.support.lifecycle import app_client, events_of, key_rows, lifecycle_settings

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
FIRST = "gemini-first-0123456789"
SECOND = "gemini-second-0123456789"
REJECTED = "reject-candidate-0123456789"
PLATFORM_EXA = "platform-exa-0123456789"
ALL_KEYS = (FIRST, SECOND, REJECTED, PLATFORM_EXA)


async def _every_action(client: httpx.AsyncClient, auth: Auth, upstreams: FakeUpstreams) -> None:
    headers = {**auth("al"), "X-Request-ID": "req-123"}
    await client.put("/v1/keys/gemini", json={"api_key": FIRST}, headers=headers)  # stored
    await client.put("/v1/keys/gemini", json={"api_key": SECOND}, headers=auth("al"))  # replaced
    await client.put("/v1/keys/exa", json={"api_key": REJECTED}, headers=auth("al"))  # rejected
    await client.post("/v1/exa/search", json={"query": "q"}, headers=auth("al"))  # platform
    upstreams.behave(SECOND, "reject")
    await client.post("/v1/gemini/generate", json={"prompt": "x"}, headers=auth("al"))
    upstreams.behave(SECOND, None)
    await client.post("/v1/keys/gemini/verify", headers=auth("al"))  # verified again


async def test_every_event_type_is_recorded_with_its_fingerprint(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """stored, replaced, verified, rejected-by-provider, unreadable, platform-used, deleted."""
    upstreams.clear()
    settings = lifecycle_settings(
        database_url, upstreams, exa_api_key=SecretStr(PLATFORM_EXA), platform_fallback="exa"
    )
    async with app_client(settings, clean_engine) as (client, container):
        await _every_action(client, auth, upstreams)
        (row,) = key_rows(clean_engine, "al")
        with clean_engine.begin() as conn:
            conn.execute(update(provider_keys).values(ciphertext=b"\0" * 40))
        await client.post("/v1/keys/gemini/verify", headers=auth("al"))  # unreadable
        await client.delete("/v1/keys/gemini", headers=auth("al"))  # deleted
        container.usage().flush()  # platform-used is written with the usage counts
        store = container.key_store()
        first_fp = store.fingerprint("al", ProviderName.GEMINI, FIRST)
        rejected_fp = store.fingerprint("al", ProviderName.EXA, REJECTED)
    events = [(e["action"], e["provider"], e["fingerprint"]) for e in events_of(clean_engine, "al")]
    second_fp = row["fingerprint"]
    assert events == [
        ("stored", "gemini", first_fp),
        ("verified", "gemini", first_fp),
        ("replaced", "gemini", second_fp),
        ("verified", "gemini", second_fp),
        ("rejected-by-provider", "exa", rejected_fp),
        ("rejected-by-provider", "gemini", second_fp),
        ("verified", "gemini", second_fp),
        ("unreadable", "gemini", second_fp),
        ("deleted", "gemini", second_fp),
        ("platform-used", "exa", None),
    ]
    assert events_of(clean_engine, "al")[0]["request_id"] == "req-123"
    assert all(e["request_id"] for e in events_of(clean_engine, "al")[:-1])


async def test_events_page_newest_first_for_the_caller_only(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """`GET /v1/keys/events` pages the caller's events newest first; others see none."""
    for n in range(5):
        await client.put(
            "/v1/keys/exa?validate=false",
            json={"api_key": f"exa-{n}-0123456789"},
            headers=auth("al"),
        )
    first = (await client.get("/v1/keys/events?limit=3", headers=auth("al"))).json()
    assert [e["action"] for e in first["events"]] == ["replaced", "replaced", "replaced"]
    ids = [e["id"] for e in first["events"]]
    assert ids == sorted(ids, reverse=True)
    assert set(first["events"][0]) >= {"provider", "action", "fingerprint", "at"}
    rest = (
        await client.get(
            f"/v1/keys/events?limit=3&before={first['next_before']}", headers=auth("al")
        )
    ).json()
    assert [e["action"] for e in rest["events"]] == ["replaced", "stored"]
    assert rest["next_before"] is None
    assert (await client.get("/v1/keys/events", headers=auth("bo"))).json()["events"] == []
    assert (await client.get("/v1/keys/events")).status_code == 401


async def test_no_key_material_in_the_events_table(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """The raw bytes of `key_events` (the SQLite file, or PostgreSQL's row text) hold no key."""
    upstreams.clear()
    settings = lifecycle_settings(
        database_url, upstreams, exa_api_key=SecretStr(PLATFORM_EXA), platform_fallback="exa"
    )
    async with app_client(settings, clean_engine) as (client, container):
        await _every_action(client, auth, upstreams)
        await client.delete("/v1/keys/gemini", headers=auth("al"))
        container.usage().flush()
    raw = _table_bytes(clean_engine)
    for key in ALL_KEYS:
        assert key.encode() not in raw
        assert key[-12:].encode() not in raw


def _table_bytes(engine: Engine) -> bytes:
    """Every byte the database holds for `key_events`: row text, and on SQLite the file."""
    with engine.connect() as conn:
        assert conn.execute(select(key_events)).first() is not None
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT k::text FROM key_events k"))
            return "\n".join(str(r[0]) for r in rows).encode()
        conn.execute(text("PRAGMA wal_checkpoint(FULL)"))
        raw = "\n".join(str(tuple(r)) for r in conn.execute(select(key_events))).encode()
    assert engine.url.database is not None
    return raw + Path(engine.url.database).read_bytes()
