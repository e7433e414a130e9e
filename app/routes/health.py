"""Liveness and readiness."""

import anyio
from fastapi import APIRouter, Response

from keyscope.app.db import run_in_db_thread
from keyscope.app.deps import EngineDep, KeyStoreDep
from keyscope.app.errors import DatabaseUnavailable, SchemaNotMigrated
from keyscope.app.problems import ProblemRoute, problem
from keyscope.app.schema import read_schema_state

router = APIRouter(route_class=ProblemRoute, tags=["health"])

READY_TIMEOUT_SECONDS = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(store: KeyStoreDep, engine: EngineDep) -> Response | dict[str, str]:
    """Ready to serve: the database answers, its schema is at keyscope's migration head, and
    the keyring is loaded (the store holds it).

    Answers within READY_TIMEOUT_SECONDS however the database fails. `key_cache` says how
    this process hears of its peers' writes; `reconnecting` (or `connecting`) means the
    PostgreSQL listener is down and every read goes to the database: correct, only slower,
    so the process stays ready."""
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            await store.ping(READY_TIMEOUT_SECONDS)
            state = await run_in_db_thread(read_schema_state, engine)
    except (DatabaseUnavailable, TimeoutError):
        return problem(503, "not-ready", "Not ready", "The key database is unreachable.")
    if not state.migrated:
        not_migrated = SchemaNotMigrated()
        return problem(not_migrated.status, not_migrated.slug, not_migrated.title, state.describe())
    return {
        "status": "ready",
        "primary_key_id": store.cipher.keyring.primary_id,
        "key_cache": store.coherence.state,
    }
