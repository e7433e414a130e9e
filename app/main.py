"""The app factory: `create_app(container)` builds a FastAPI app around a container.

The factory is separate from the container so tests and embedding apps build their own.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from keyscope.app.keys.router import router as keys_router
from keyscope.app.legacy.wiring.binding import LegacyEnvMiddleware
from keyscope.app.legacy.wiring.lifecycle import install_legacy_overlay, uninstall_legacy_overlay
from keyscope.app.legacy.wiring.router import router as legacy_router
from keyscope.app.problems import install_error_handlers
from keyscope.app.routes import copilotkit, exa, gemini, health
from keyscope.app.scope import RequestScopeMiddleware
from keyscope.containers import Container

log = logging.getLogger("keyscope")


def create_app(container: Container | None = None) -> FastAPI:
    container = container or Container()
    settings = container.settings()
    settings.check_production()
    container.keyring()  # a bad keyring fails here, at start-up, not on the first request

    legacy = settings.legacy_env == "overlay"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_report_unknown_key_ids, container)
        if legacy:
            install_legacy_overlay(container)
        try:
            yield
        finally:
            if legacy:
                uninstall_legacy_overlay()
            await container.http().aclose()
            container.engine().dispose()

    app = FastAPI(title="keyscope", version="0.1.0", lifespan=lifespan)
    app.state.container = container
    install_error_handlers(app)
    # Routes are matched in order, each one passed costs a little: the per-request provider
    # routes first, the keys API and the probes after them.
    for provider_router in (copilotkit.router, gemini.router, exa.router):
        app.include_router(provider_router)
    app.include_router(keys_router)
    app.include_router(health.router)
    if legacy:
        app.include_router(legacy_router)
        app.add_middleware(LegacyEnvMiddleware, container=container)
    app.add_middleware(RequestScopeMiddleware)  # added last: the outermost, opens the scope
    return app


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
