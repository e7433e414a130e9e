"""Helpers for the key lifecycle tests: settings with the fakes as upstreams, a short
validation timeout and no periodic usage flush (tests flush explicitly, so counts are exact
when they look), and readers of the rows the lifecycle writes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from dependency_injector import providers as di
from sqlalchemy import Engine, select

from keyscope.app.keys.models import key_events, provider_keys
from keyscope.app.main import create_app
from keyscope.app.settings import Settings
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams
from tests.support.settings import make_settings, upstream_urls

VALIDATION_TIMEOUT = 0.5  # the session's fakes answer `slow` keys after 3 s


def lifecycle_settings(database_url: str, upstreams: FakeUpstreams, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "key_validation": True,
        "key_validation_timeout": VALIDATION_TIMEOUT,
        "usage_flush_interval": 3600.0,
        **upstream_urls(upstreams),
    }
    values.update(overrides)
    return make_settings(database_url, **values)


def events_of(engine: Engine, user_id: str) -> list[dict[str, Any]]:
    """The user's audit rows, oldest first."""
    query = select(key_events).where(key_events.c.user_id == user_id).order_by(key_events.c.id)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def key_rows(engine: Engine, user_id: str) -> list[dict[str, Any]]:
    query = select(provider_keys).where(provider_keys.c.user_id == user_id)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


@asynccontextmanager
async def app_client(
    settings: Settings, engine: Engine
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """A client on a fresh app built with `settings`, lifespan running."""
    container = Container(settings=di.Object(settings), engine=di.Object(engine))
    application = create_app(container)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://keyscope.test") as c:
            yield c, container
