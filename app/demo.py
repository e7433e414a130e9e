"""`keyscope demo`: many users, concurrent requests to all three providers, who got which key.

Everything runs on loopback: fake Gemini / Exa / Copilot Cloud servers that record the key each
request carried, a throw-away SQLite database, and the real app under uvicorn.
"""

import asyncio
import base64
import random
import secrets
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
from dependency_injector import providers as di
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from keyscope.app.live_server import live_server
from keyscope.app.main import create_app
from keyscope.app.migrate import upgrade
from keyscope.app.security.tokens import mint_token
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams, UpstreamRecord

ROUTES: dict[ProviderName, tuple[str, str]] = {
    ProviderName.GEMINI: ("/v1/gemini/generate", "prompt"),
    ProviderName.EXA: ("/v1/exa/search", "query"),
    ProviderName.COPILOTKIT: ("/v1/copilotkit/runtime", "probe"),
}


@dataclass
class Tally:
    requests: int = 0
    correct: int = 0
    wrong: int = 0
    seen_last4: str = ""


def run_demo(users: int, requests_per_user: int, console: Console) -> int:
    """Run the demo; returns the number of upstream calls that carried a wrong key."""
    with tempfile.TemporaryDirectory() as tmp, FakeUpstreams() as fakes:
        settings = _settings(Path(tmp), fakes)
        upgrade(settings.database_url)
        app = create_app(Container(settings=di.Object(settings)))
        with live_server(app) as base_url:
            console.print(f"keyscope on {base_url}; fake providers on loopback")
            return asyncio.run(_drive(base_url, settings, fakes, users, requests_per_user, console))


def _settings(tmp: Path, fakes: FakeUpstreams) -> Settings:
    return Settings(
        _env_file=None,
        deploy_env="production",
        database_url=f"sqlite:///{tmp / 'demo.db'}",
        master_keys=SecretStr("demo:" + base64.b64encode(secrets.token_bytes(32)).decode()),
        jwt_secret=SecretStr(secrets.token_urlsafe(48)),
        gemini_base_url=fakes.gemini_base_url,
        exa_base_url=fakes.exa_base_url,
        copilotkit_base_url=fakes.copilotkit_runtime_url,
        gemini_api_key=None,
        google_api_key=None,
        exa_api_key=None,
        copilotkit_api_key=None,
    )


async def _drive(
    base_url: str,
    settings: Settings,
    fakes: FakeUpstreams,
    users: int,
    per_user: int,
    console: Console,
) -> int:
    assert settings.jwt_secret is not None
    secret = settings.jwt_secret.get_secret_value()
    names = [f"user-{i:03d}" for i in range(users)]
    tokens = {u: mint_token(secret, u) for u in names}
    keys = {u: {p: _demo_key(p) for p in ProviderName} for u in names}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for user in names:
            for provider, key in keys[user].items():
                response = await client.put(
                    f"/v1/keys/{provider.value}",
                    json={"api_key": key},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
                response.raise_for_status()
        console.print(f"stored {users * len(ProviderName)} keys for {users} users")
        fakes.clear()
        providers = list(ProviderName)
        plan = [
            (u, i, providers[(n + i) % len(providers)])
            for n, u in enumerate(names)
            for i in range(per_user)
        ]
        random.shuffle(plan)
        started = time.monotonic()
        statuses = await asyncio.gather(*(_call(client, tokens[u], u, i, p) for u, i, p in plan))
        elapsed = time.monotonic() - started
    failed = sum(1 for s in statuses if s != 200)
    tallies = _tally(fakes.records(), keys)
    _print(console, tallies, keys)
    wrong = sum(t.wrong for t in tallies.values())
    missing = len(plan) - sum(t.requests for t in tallies.values())
    console.print(
        f"{len(plan)} concurrent requests in {elapsed:.2f}s: {failed} failed, "
        f"{missing} never reached a provider, [bold]{wrong} wrong keys[/]"
    )
    return wrong + missing + failed


def _demo_key(provider: ProviderName) -> str:
    prefix = "ck_pub_" if provider is ProviderName.COPILOTKIT else f"{provider.value}-"
    return prefix + secrets.token_hex(8)


async def _call(
    client: httpx.AsyncClient, token: str, user: str, i: int, provider: ProviderName
) -> int:
    path, field = ROUTES[provider]
    body: dict[str, object] = {field: f"{user}|{i}"}
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    await response.aread()
    return response.status_code


def _tally(
    records: list[UpstreamRecord], keys: dict[str, dict[ProviderName, str]]
) -> dict[tuple[str, ProviderName], Tally]:
    tallies: dict[tuple[str, ProviderName], Tally] = defaultdict(Tally)
    for record in records:
        body = record.json()
        tag = (
            body["contents"][0]["parts"][0]["text"]
            if record.provider is ProviderName.GEMINI
            else body["query"]
            if record.provider is ProviderName.EXA
            else body["probe"]
        )
        user = str(tag).split("|")[0]
        tally = tallies[(user, record.provider)]
        tally.requests += 1
        tally.seen_last4 = (record.key or "")[-4:]
        if record.key == keys[user][record.provider]:
            tally.correct += 1
        else:
            tally.wrong += 1
    return tallies


def _print(
    console: Console,
    tallies: dict[tuple[str, ProviderName], Tally],
    keys: dict[str, dict[ProviderName, str]],
) -> None:
    table = Table(title="who got which key (last 4 characters only)")
    for column in ("user", "provider", "requests", "key seen upstream", "user's key", "correct"):
        table.add_column(column)
    for (user, provider), tally in sorted(tallies.items()):
        ok = "[green]yes[/]" if tally.wrong == 0 else f"[red]{tally.wrong} wrong[/]"
        table.add_row(
            user,
            provider.value,
            str(tally.requests),
            f"…{tally.seen_last4}",
            f"…{keys[user][provider][-4:]}",
            ok,
        )
    console.print(table)
