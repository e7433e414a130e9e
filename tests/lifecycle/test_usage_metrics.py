"""Usage counted off the hot path (exact after a flush, flushed at shutdown), and `/metrics`
in Prometheus text format whose counters match the requests made."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, select

from keyscope.app.keys.models import key_usage_daily
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams
from tests.support.lifecycle import app_client, key_rows, lifecycle_settings

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
N = 40
PLATFORM_EXA = "platform-exa-0123456789"


def _usage_rows(engine: Engine) -> set[tuple[str, str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(key_usage_daily)).mappings().all()
    today = datetime.now(UTC).date()
    assert all(r["day"] == today for r in rows)
    return {(r["user_id"], r["provider"], r["origin"], r["requests"]) for r in rows}


async def _load(client: httpx.AsyncClient, auth: Auth) -> None:
    async def one(i: int) -> None:
        user = ("al", "bo")[i % 2]
        response = await client.post(
            "/v1/gemini/generate", json={"prompt": f"p{i}"}, headers=auth(user)
        )
        assert response.status_code == 200, response.text

    await asyncio.gather(*(one(i) for i in range(N)))
    for _ in range(3):  # bo has no Exa key: the platform key serves
        response = await client.post("/v1/exa/search", json={"query": "q"}, headers=auth("bo"))
        assert response.status_code == 200


async def _store_keys(client: httpx.AsyncClient, auth: Auth) -> None:
    for user in ("al", "bo"):
        response = await client.put(
            "/v1/keys/gemini", json={"api_key": f"gemini-{user}-0123456789"}, headers=auth(user)
        )
        assert response.status_code == 200


def _settings(database_url: str, upstreams: FakeUpstreams, **extra: Any) -> Settings:
    return lifecycle_settings(
        database_url,
        upstreams,
        exa_api_key=SecretStr(PLATFORM_EXA),
        platform_fallback="exa",
        **extra,
    )


async def test_daily_counts_and_last_used_are_exact_after_a_flush(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """N requests → nothing written until the flush, then exact counts and `last_used_at`."""
    upstreams.clear()
    settings = _settings(database_url, upstreams)
    async with app_client(settings, clean_engine) as (client, container):
        await _store_keys(client, auth)
        before = datetime.now(UTC)
        await _load(client, auth)
        assert _usage_rows(clean_engine) == set()  # off the hot path: nothing written yet
        assert all(r["last_used_at"] is None for r in key_rows(clean_engine, "al"))
        assert await asyncio.to_thread(container.usage().flush) == 3
        assert _usage_rows(clean_engine) == {
            ("al", "gemini", "user", N // 2),
            ("bo", "gemini", "user", N // 2),
            ("bo", "exa", "platform", 3),
        }
        listed = (await client.get("/v1/keys", headers=auth("al"))).json()["keys"]
        (gemini,) = listed
        assert datetime.fromisoformat(gemini["last_used_at"]) >= before
        assert gemini["usage"] == [
            {"day": datetime.now(UTC).date().isoformat(), "origin": "user", "requests": N // 2}
        ]
        await client.post("/v1/gemini/generate", json={"prompt": "late"}, headers=auth("al"))
    # Leaving the lifespan flushed the last request.
    assert ("al", "gemini", "user", N // 2 + 1) in _usage_rows(clean_engine)


async def test_usage_tracking_off_writes_nothing(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """KEYSCOPE_USAGE_TRACKING=false: requests still served, no usage rows."""
    settings = _settings(database_url, upstreams, usage_tracking=False)
    async with app_client(settings, clean_engine) as (client, _):
        await _store_keys(client, auth)
        await _load(client, auth)
    assert _usage_rows(clean_engine) == set()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def test_metrics_parse_and_match_the_requests_made(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """Requests by provider and origin, validations, upstream errors, quota refusals, cache."""
    upstreams.clear()
    settings = _settings(database_url, upstreams, platform_quota="exa:2", metrics_enabled=True)
    async with app_client(settings, clean_engine) as (client, container):
        await _store_keys(client, auth)
        await client.put("/v1/keys/exa", json={"api_key": "reject-0123456789"}, headers=auth("al"))
        await client.put(
            "/v1/keys/exa", json={"api_key": "slow-exa-0123456789"}, headers=auth("cy")
        )
        for _ in range(N):
            await client.post("/v1/gemini/generate", json={"prompt": "x"}, headers=auth("al"))
        statuses = [
            (
                await client.post("/v1/exa/search", json={"query": "q"}, headers=auth("bo"))
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        await client.post("/v1/gemini/generate", json={"prompt": "x", "model": "missing-1"},
                          headers=auth("al"))  # fmt: skip
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
        await _check_no_identities(response.text, container)
    requests = "keyscope_provider_requests_total"
    assert samples[requests, (("origin", "user"), ("provider", "gemini"))] == N + 1
    assert samples[requests, (("origin", "platform"), ("provider", "exa"))] == 2
    validations = "keyscope_key_validations_total"
    assert samples[validations, (("outcome", "accepted"), ("provider", "gemini"))] == 2
    assert samples[validations, (("outcome", "rejected"), ("provider", "exa"))] == 1
    assert samples[validations, (("outcome", "unverified"), ("provider", "exa"))] == 1
    errors = "keyscope_upstream_errors_total"
    assert samples[errors, (("kind", "bad_request"), ("provider", "gemini"))] == 1
    assert samples["keyscope_platform_quota_rejections_total", (("provider", "exa"),)] == 1
    hits = samples["keyscope_key_cache_lookups_total", (("result", "hit"),)]
    misses = samples["keyscope_key_cache_lookups_total", (("result", "miss"),)]
    assert hits >= N - 1
    assert misses >= 1


async def _check_no_identities(text: str, container: Container) -> None:
    for needle in ("al", "bo", "cy"):
        assert f'"{needle}"' not in text
    for secret in ("gemini-al-0123456789", "reject-0123456789", PLATFORM_EXA, "0123456789"):
        assert secret not in text


async def test_legacy_reads_per_call_site_are_exposed(
    database_url: str, upstreams: FakeUpstreams, auth: Auth, clean_engine: Engine
) -> None:
    """With the overlay on, each legacy `os.getenv` call site is a labelled counter."""
    from keyscope.app.legacy import overlay

    overlay.reset_counts()
    settings = _settings(database_url, upstreams, legacy_env="overlay", metrics_enabled=True)
    async with app_client(settings, clean_engine) as (client, _):
        await _store_keys(client, auth)
        for _ in range(3):
            response = await client.post(
                "/v1/legacy/gemini/generate", json={"prompt": "x"}, headers=auth("al")
            )
            assert response.status_code == 200, response.text
        text = (await client.get("/metrics")).text
    legacy = {
        labels: value
        for (name, labels), value in _samples(text).items()
        if name == "keyscope_legacy_env_reads_total"
    }
    sites = {dict(labels)["site"]: value for labels, value in legacy.items()}
    assert sites, text
    assert all(site.rsplit(":", 1)[1].isdigit() for site in sites)
    assert sum(sites.values()) == sum(overlay.read_counts().values())
    overlay.reset_counts()


async def test_metrics_are_off_by_default_in_production(
    database_url: str, upstreams: FakeUpstreams, clean_engine: Engine
) -> None:
    """Production without KEYSCOPE_METRICS_ENABLED: no /metrics route; with it: served."""
    async with app_client(_settings(database_url, upstreams), clean_engine) as (client, _):
        assert (await client.get("/metrics")).status_code == 404
    settings = _settings(database_url, upstreams, metrics_enabled=True)
    async with app_client(settings, clean_engine) as (client, _):
        assert (await client.get("/metrics")).status_code == 200
