"""Mounting keyscope: `integrate(app)` wires it into any FastAPI app; `create_app()` builds
keyscope's own service app with it.

The factory is separate from the container so tests and embedding apps build their own.
"""

import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from keyscope.app.access_log import install_access_log_redaction
from keyscope.app.body_limit import BodyLimitMiddleware
from keyscope.app.db import require_driver
from keyscope.app.keys.router import router as keys_router
from keyscope.app.legacy.wiring.binding import LegacyEnvMiddleware
from keyscope.app.legacy.wiring.lifecycle import install_legacy_overlay, uninstall_legacy_overlay
from keyscope.app.legacy.wiring.router import router as legacy_router
from keyscope.app.openapi import install_openapi
from keyscope.app.problems import install_error_handlers, problem
from keyscope.app.routes import copilotkit, exa, gemini, health, metrics
from keyscope.app.schema import report_schema_at_startup
from keyscope.app.scope import RequestScopeMiddleware
from keyscope.containers import Container

log = logging.getLogger("keyscope")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]

# Start-up waits this long for the cache listener; past it the app serves, reading through.
COHERENCE_START_WAIT_SECONDS = 3.0

# The containers whose `keyscope_lifespan` is running (entered, not yet left).
_running: "weakref.WeakSet[Container]" = weakref.WeakSet()

NOT_STARTED = (
    "keyscope's start-up has not run for this app: it is served without its ASGI lifespan (as "
    "Starlette serves an app mounted inside another with host.mount(...), or a test client "
    "that skips it), so usage would never be written and pools never closed. Call "
    "keyscope.app.main.integrate(host, prefix=...) on the app the server runs, or enter "
    "keyscope.app.main.keyscope_lifespan(container) in the host's lifespan; in tests use "
    "keyscope.app.testing.app_client(app) or `with TestClient(app)`"
)


class AlreadyIntegrated(RuntimeError):
    """integrate() was called twice on one app (its middleware and lifespan would run twice)."""


@dataclass(frozen=True, slots=True)
class Integration:
    """What integrate() did to an app; kept in `app.state.keyscope`."""

    container: Container
    prefix: str
    routers: tuple[str, ...]
    legacy: bool


def integrate(
    app: FastAPI,
    container: Container | None = None,
    *,
    prefix: str = "",
    keys: bool = True,
    health_routes: bool = False,
    provider_routes: bool = False,
    problem_json_everywhere: bool = False,
) -> Container:
    """Wire keyscope into `app` and return the container it uses.

    Adds the request-scope middleware (outermost of the middleware added so far), mounts
    keyscope's routers under `prefix` (the keys API, `/v1/keys`, by default; health checks and
    the provider routes on request), chains keyscope's start-up and shut-down around the app's
    own lifespan (a `lifespan=` function or `on_startup`/`on_shutdown` handlers, which keep
    running), and, when `KEYSCOPE_LEGACY_ENV=overlay`, installs the overlay and its
    binding middleware (and the legacy example routes when `provider_routes` is set).

    keyscope's errors are problem+json everywhere; framework errors (`HTTPException`, 422)
    only on keyscope's routes unless `problem_json_everywhere=True`.

    Call it once per app, on the app the server runs: Starlette does not run a mounted
    sub-app's lifespan, so an app integrated and then mounted refuses every request (503
    `keyscope-not-started`, naming the fix) until `keyscope_lifespan(container)` runs, e.g.
    from the host's lifespan.
    """
    if getattr(app.state, "keyscope", None) is not None:
        raise AlreadyIntegrated("keyscope is already integrated into this app")
    container = container or Container()
    settings = container.settings()
    settings.check_production()
    container.keyring()  # a bad keyring fails here, at start-up, not on the first request
    require_driver(settings.database_url)  # e.g. PostgreSQL without the [postgres] extra
    container.platform_quota()  # and so does a malformed KEYSCOPE_PLATFORM_QUOTA
    legacy = settings.legacy_env == "overlay"

    # Routes are matched in order, each one passed costs a little: the per-request provider
    # routes first, the keys API and the probes after them.
    mounted: list[APIRouter] = []
    if provider_routes:
        mounted.extend((copilotkit.router, gemini.router, exa.router))
    if keys:
        mounted.append(keys_router)
    if health_routes:
        mounted.append(health.router)
    if provider_routes and legacy:
        mounted.append(legacy_router)
    if settings.metrics_on:  # KEYSCOPE_METRICS_ENABLED: on in local mode, off in production
        mounted.append(metrics.router)
    for router in mounted:
        app.include_router(router, prefix=prefix)

    install_error_handlers(
        app, everywhere=problem_json_everywhere, on_error=container.key_health().on_error
    )
    app.router.lifespan_context = _chained(app.router.lifespan_context, container, legacy)
    if legacy:
        app.add_middleware(LegacyEnvMiddleware, container=container)
    # Bodies are bounded, and authenticated on keyscope's routes, before they are read.
    app.add_middleware(
        BodyLimitMiddleware,
        limits=[
            (prefix + "/v1/keys", settings.keys_body_limit),
            (prefix + "/v1/copilotkit/runtime", settings.runtime_body_limit),
        ],
        default_limit=settings.body_limit,
        authenticate=lambda: container.principal(),
        authenticated_prefixes=tuple(prefix + r.prefix + "/" for r in mounted if r.prefix),
        only_prefixes=tuple(prefix + r.prefix for r in mounted if r.prefix),
    )
    install_openapi(app, tuple(prefix + r.prefix for r in mounted if r.prefix), prefix=prefix)
    install_access_log_redaction()
    app.add_middleware(RequestScopeMiddleware, container=container)  # outermost: opens the scope
    _refuse_until_started(app, container)
    app.state.container = container
    app.state.keyscope = Integration(
        container, prefix, tuple(r.prefix or "/" for r in mounted), legacy
    )
    return container


def create_app(container: Container | None = None, **fastapi_options: Any) -> FastAPI:
    """keyscope's own service: every route, problem+json for every error.

    `fastapi_options` go to `FastAPI(...)` (title, version, lifespan, docs_url, ...).
    """
    fastapi_options.setdefault("title", "keyscope")
    fastapi_options.setdefault("version", "0.1.0")
    # No trailing-slash redirects: a 307 before authentication makes clients re-send the
    # request (and the key in its body) to another URL; keyscope's paths have one spelling.
    fastapi_options.setdefault("redirect_slashes", False)
    app = FastAPI(**fastapi_options)
    integrate(
        app,
        container,
        health_routes=True,
        provider_routes=True,
        problem_json_everywhere=True,
    )
    return app


def _chained(inner: Lifespan, container: Container, legacy: bool) -> Lifespan:
    """The app's own lifespan, run inside keyscope's (so its start-up can use keyscope, and its
    shut-down runs before keyscope closes the pools); its state is passed through."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with keyscope_lifespan(container, legacy), inner(app) as state:
            yield state

    return lifespan


@asynccontextmanager
async def keyscope_lifespan(
    container: Container, legacy: bool | None = None
) -> AsyncIterator[None]:
    """keyscope's start-up and shut-down for `container` (integrate() chains it around the
    app's own lifespan). Enter it yourself from a host app's lifespan when the integrated app
    is mounted inside that host. `legacy` defaults to the settings' KEYSCOPE_LEGACY_ENV."""
    if legacy is None:
        legacy = container.settings().legacy_env == "overlay"
    await anyio.to_thread.run_sync(report_schema_at_startup, container.engine())
    await anyio.to_thread.run_sync(_report_unknown_key_ids, container)
    coherence = container.key_store().coherence
    await anyio.to_thread.run_sync(coherence.start, COHERENCE_START_WAIT_SECONDS)
    if legacy:
        install_legacy_overlay(container)
    usage = container.usage()
    usage.start()
    _running.add(container)
    try:
        yield
    finally:
        _running.discard(container)
        await anyio.to_thread.run_sync(usage.stop)  # the last flush: nothing counted is lost
        if legacy:
            uninstall_legacy_overlay()
        await container.http().aclose()
        await anyio.to_thread.run_sync(coherence.stop)
        container.engine().dispose()


def _refuse_until_started(app: FastAPI, container: Container) -> None:
    """Put a guard outside the app's whole middleware stack that answers 503 while keyscope's
    lifespan is not running for `container`, and takes itself out of the stack on the first
    request it lets through, so a started app pays nothing for it."""
    build = app.build_middleware_stack

    def build_guarded() -> ASGIApp:
        return _StartedGuard(app, build(), container)

    app.build_middleware_stack = build_guarded  # type: ignore[method-assign]  # wraps Starlette's


class _StartedGuard:
    def __init__(self, owner: FastAPI, app: ASGIApp, container: Container) -> None:
        self.owner = owner
        self.app = app
        self.container = container
        self.logged = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self.container in _running:
            if scope["type"] != "lifespan":
                # Starlette calls `middleware_stack` per request: from now on, the stack
                # without this guard.
                self.owner.middleware_stack = self.app
            await self.app(scope, receive, send)
            return
        if not self.logged:
            self.logged = True
            log.error("requests refused: %s", NOT_STARTED)
        if scope["type"] == "http":
            response = problem(503, "keyscope-not-started", "keyscope not started", NOT_STARTED)
            await response(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})


def _report_unknown_key_ids(container: Container) -> None:
    """Rows whose master key id is not in the keyring would fail to decrypt: say so now."""
    keyring = container.keyring()
    try:
        in_use = container.key_store().key_ids_in_use()
    except Exception as exc:  # the database may be down at start; /readyz reports that
        log.warning("start-up key id check skipped: %s", type(exc).__name__)
        return
    for kid, count in sorted(in_use.items()):
        if kid not in keyring:
            log.error(
                "%d stored key(s) use master key id %r, which is not in KEYSCOPE_MASTER_KEYS: "
                "they cannot be decrypted until that key is added back to the keyring",
                count,
                kid,
            )
