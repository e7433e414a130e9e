"""Upstream deadlines: a trickled answer is a 504 on time; a stalled stream ends visibly."""

import time
from collections.abc import Callable

import httpx
import pytest
from dependency_injector import providers as di
from sqlalchemy import Engine

from keyscope.app.live_server import live_server
from keyscope.app.main import create_app
from keyscope.containers import Container
from keyscope.providers.fakes import FakeUpstreams
from tests.support.settings import make_settings, upstream_urls

Auth = Callable[[str], dict[str, str]]
DEADLINE = 1.0


@pytest.fixture
def base_url(clean_engine: Engine, database_url: str, upstreams: FakeUpstreams) -> object:
    settings = make_settings(
        database_url,
        upstream_timeout=DEADLINE,
        upstream_stream_idle=0.5,
        **upstream_urls(upstreams),
    )
    app = create_app(Container(settings=di.Object(settings), engine=di.Object(clean_engine)))
    with live_server(app) as url:
        yield url


@pytest.mark.parametrize(
    ("provider", "path", "body"),
    [
        ("gemini", "/v1/gemini/generate", {"prompt": "hi"}),
        ("exa", "/v1/exa/search", {"query": "hi"}),
    ],
)
def test_trickled_answer_is_504_within_the_deadline(
    base_url: str, auth: Auth, provider: str, path: str, body: dict[str, str]
) -> None:
    """Each byte arrives well within a read timeout, the whole answer not within the deadline."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        stored = client.put(
            f"/v1/keys/{provider}", json={"api_key": "trickle-key-0123"}, headers=auth("a")
        )
        assert stored.status_code == 200
        started = time.monotonic()
        response = client.post(path, json=body, headers=auth("a"))
        elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert elapsed < DEADLINE + 2.0


def test_stalled_stream_ends_with_an_error_not_a_clean_end(base_url: str, auth: Auth) -> None:
    """The runtime stream stalls after its first event: the client gets an `event: error`
    and then a broken (incomplete) body, never a normal end of stream."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        stored = client.put(
            "/v1/keys/copilotkit", json={"api_key": "ck_pub_trickle-0123"}, headers=auth("a")
        )
        assert stored.status_code == 200
        received = b""
        broken = False
        runtime = "/v1/copilotkit/runtime"
        with client.stream("POST", runtime, json={"m": 1}, headers=auth("a")) as response:
            assert response.status_code == 200
            try:
                for chunk in response.iter_raw():
                    received += chunk
            except httpx.RemoteProtocolError:
                broken = True
    assert broken, "the stream ended as if complete"
    assert b'"index": 0' in received
    assert b"event: error" in received
    assert b"provider-upstreamtimeout" in received
