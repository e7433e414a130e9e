"""`python -m bench.breakdown`: where keyscope's per-request CPU goes, step by step.

Drives the ASGI apps in-process (no HTTP parsing, no sockets: only the app's own work) with
one request at a time, rotating over the users, and reports process CPU per request for a
ladder of routes on the real keyscope app, each adding one step to the one before:

  none        routing + keyscope's middleware, no dependency
  depends     + one FastAPI dependency that does nothing (FastAPI's own cost of a `Depends`)
  principal   + PrincipalDep (request scope, cached token verification)
  user_keys   + UserKeysDep instead (principal + encrypted records from the cache)
  decrypt     + opening the Gemini key (two AES-256-GCM layers)
  client      GeminiDep alone (decrypt + GeminiClient on the shared pools)
  bench       the `/bench/gemini` route the load test measures (GeminiDep, as /v1/gemini)
  config      the app's own `GET /v1/copilotkit/config` endpoint (CopilotKitDep: the client,
              the key-origin header, the usage count), routed in front like the rows above
  config-in-place  the same request where the app routes it (behind FastAPI's docs routes
              and the /breakdown routes in front), as the load test sends it

and the bench's floor app: `bare` (a hard-coded key, nothing built per request) and
`bare-gemini` (the same plus a GeminiClient on shared pools). Three alternatives to `config`
each undo one choice of its hot path: `config-model` validates the body against the pydantic
response model, `config-2deps` adds a second dependency (UserKeysDep, as the route once did),
`config-di-async` builds the client with dependency-injector's async mode; `principal-direct`
calls `container.principal()` in the endpoint, without a FastAPI dependency. Rounds alternate
between the routes; the median per route is printed. Noisy machines make single figures
move by ±20 %: compare rows of one run, not runs.
"""

import argparse
import asyncio
import gc
import importlib
import inspect
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.responses import Response

from bench.apps.common import match_first
from bench.databases import sqlite_database
from bench.environment import server_env
from bench.seeding import BenchUser, make_users, seed_keyscope
from bench.variants import VARIANTS
from keyscope.app.testing import running

Message = MutableMapping[str, Any]
LADDER = ("none", "depends", "principal", "user_keys", "decrypt", "config", "client", "bench")
ALTERNATIVES = (
    "config-in-place",
    "principal-direct",
    "config-model",
    "config-2deps",
    "config-di-async",
)
PATHS = {"bench": "/bench/gemini", "config-in-place": "/v1/copilotkit/config"}


def add_ladder_routes(app: FastAPI) -> None:
    """The ladder's routes on the keyscope app (bench-only paths under /breakdown)."""
    from keyscope.app.deps import GeminiDep, PrincipalDep, UserKeysDep
    from keyscope.providers import ProviderName
    from keyscope.providers.copilotkit import CopilotKitClient

    @app.get("/breakdown/none")
    async def none() -> dict[str, str]:
        return {"user": "-"}

    async def nothing() -> None:
        return None

    @app.get("/breakdown/depends")
    async def depends(_: Annotated[None, Depends(nothing)]) -> dict[str, str]:
        return {"user": "-"}

    @app.get("/breakdown/principal")
    async def principal(who: PrincipalDep) -> dict[str, str]:
        return {"user": who.subject}

    @app.get("/breakdown/user_keys")
    async def user_keys(keys: UserKeysDep) -> dict[str, str]:
        return {"user": keys.user_id}

    @app.get("/breakdown/decrypt")
    async def decrypt(keys: UserKeysDep) -> dict[str, str]:
        secret = keys.require(ProviderName.GEMINI).secret.reveal()
        return {"user": keys.user_id, "len": str(len(secret))}

    @app.get("/breakdown/client")
    async def client(gemini: GeminiDep) -> dict[str, str]:
        return {"user": "-", "base": gemini.base_url}

    # Alternatives to the config route, each undoing one choice of the hot path, so one run
    # shows what each choice is worth.
    from dependency_injector import providers as di

    from keyscope.app.clients import copilotkit_for, key_origin
    from keyscope.app.deps import CopilotKitDep, request_dependency
    from keyscope.app.routes.copilotkit import CopilotKitConfig
    from keyscope.app.routes.copilotkit import config as config_endpoint

    # The app's own endpoint function, unchanged, on a route matched first.
    app.get("/breakdown/config", response_class=Response)(config_endpoint)

    container = app.state.container
    # dependency-injector's own async mode (what the client factories used before `Built`).
    container.copilotkit_async = di.Factory(
        copilotkit_for,
        container.user_keys,
        container.http,
        "http://127.0.0.1:9/",
        container.usage,
        container.platform_quota,
    )
    container.copilotkit_async.enable_async_mode()
    copilotkit_async = request_dependency(lambda c: c.copilotkit_async)

    @app.get("/breakdown/principal-direct")
    async def principal_direct() -> dict[str, str]:
        # The principal without a FastAPI dependency: what one `Depends` costs by difference.
        who = container.principal()
        if inspect.isawaitable(who):
            who = await who
        return {"user": who.subject}

    @app.get("/breakdown/config-model")
    async def config_model(copilotkit: CopilotKitDep) -> CopilotKitConfig:
        origin = key_origin(ProviderName.COPILOTKIT)
        return CopilotKitConfig(
            public_api_key=copilotkit.public_key,
            runtime_url="/v1/copilotkit/runtime",
            key_origin=origin.value if origin else "",
        )

    @app.get("/breakdown/config-2deps")
    async def config_2deps(copilotkit: CopilotKitDep, keys: UserKeysDep) -> CopilotKitConfig:
        return CopilotKitConfig(
            public_api_key=copilotkit.public_key,
            runtime_url="/v1/copilotkit/runtime",
            key_origin=keys.require(ProviderName.COPILOTKIT).origin.value,
        )

    @app.get("/breakdown/config-di-async")
    async def config_di_async(
        copilotkit: Annotated[CopilotKitClient, Depends(copilotkit_async)],
    ) -> dict[str, str]:
        return {"public_api_key": copilotkit.public_key}

    # In front, like the bench routes: every row pays the same route-table scan.
    match_first(app, *(f"/breakdown/{step}" for step in LADDER + ALTERNATIVES), *PATHS.values())


async def _call(app: Callable[..., Awaitable[None]], path: str, token: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def _cpu_us(
    app: Callable[..., Awaitable[None]], path: str, users: list[BenchUser], n: int
) -> float:
    started = time.process_time()
    for i in range(n):
        status = await _call(app, path, users[i % len(users)].token)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
    return (time.process_time() - started) * 1e6 / n


async def measure(apps: dict[str, tuple[Any, str]], users: list[BenchUser], args: Any) -> None:
    for app, path in apps.values():  # warm every cache: tokens, records, code paths
        await _cpu_us(app, path, users, len(users))
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, (app, path) in apps.items():
            # The Gemini rows leave garbage and client-closing callbacks: settle them here, so
            # the next row does not pay for them.
            gc.collect()
            for _ in range(10):
                await asyncio.sleep(0)
            samples[name].append(await _cpu_us(app, path, users, args.requests))
    bare = statistics.median(samples["bare"])
    print(f"{'route':<16} {'CPU µs/request':>15} {'x bare':>7} {'spread':>15}")
    for name, values in samples.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{name:<16} {median:>15.1f} {median / bare:>7.2f} {spread:>15}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000, help="per route and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warm = next(v for v in VARIANTS if v.name == "keyscope-warm")
    with (
        tempfile.TemporaryDirectory(prefix="keyscope-breakdown-") as tmp,
        sqlite_database(Path(tmp)) as url,
    ):
        users = make_users(args.users)
        seed_keyscope(url, users)
        # The bench apps read their configuration at import, as the servers do.
        os.environ.clear()
        os.environ.update(server_env(warm.env({"sqlite": url})))
        keyscope_app = importlib.import_module("bench.apps.keyscope").app
        bare_app = importlib.import_module("bench.apps.bare").app
        add_ladder_routes(keyscope_app)
        asyncio.run(_measure_started(keyscope_app, bare_app, users, args))


async def _measure_started(
    keyscope_app: Any, bare_app: Any, users: list[BenchUser], args: Any
) -> None:
    # Started as a server starts it (the lifespan: usage flusher, coherence), which keyscope
    # requires before it serves.
    async with running(keyscope_app) as started:
        apps: dict[str, tuple[Any, str]] = {"bare": (bare_app, "/bench/config")}
        for step in LADDER + ALTERNATIVES:
            apps[step] = (started, PATHS.get(step, f"/breakdown/{step}"))
        apps["bare-gemini"] = (bare_app, "/bench/gemini")
        await measure(apps, users, args)


if __name__ == "__main__":
    main()
