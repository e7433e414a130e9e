"""Request edges: bodies bounded and authenticated before they are read, and the small ones
(405 Allow, no trailing-slash redirect, strict JSON, no credentials in the access log)."""

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from keyscope.app.access_log import QueryRedactionFilter, redact_query
from keyscope.app.live_server import live_server

Auth = Callable[[str], dict[str, str]]
MB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size (the server runs in it, on a thread)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(app: FastAPI) -> Iterator[tuple[str, int]]:
    with live_server(app) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        yield host, int(port)


def read_status(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.mark.anyio
async def test_anonymous_upload_is_401_before_the_body(server: tuple[str, int]) -> None:
    """50 MB announced without a token: the 401 arrives with no body byte sent."""
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/keys/exa HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * MB)
        )
        started = time.monotonic()
        assert read_status(sock) == 401
        assert time.monotonic() - started < 5


@pytest.mark.anyio
async def test_announced_oversized_body_is_413_at_once(server: tuple[str, int], auth: Auth) -> None:
    """A valid token and a 100 MB Content-Length: 413 before any of it is sent."""
    token = auth("alice")["Authorization"].encode()
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/keys/exa HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: " + token + b"\r\nContent-Length: %d\r\n\r\n" % (100 * MB)
        )
        assert read_status(sock) == 413


@pytest.mark.anyio
async def test_streamed_100mb_body_is_413_with_flat_rss(
    server: tuple[str, int], auth: Auth
) -> None:
    """100 MB chunked (no length) to PUT /v1/keys: 413, and resident memory does not grow by
    anything like the body (it is counted, not buffered)."""
    token = auth("alice")["Authorization"].encode()
    piece = b" " * MB
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    before = rss_bytes()
    sent = 0
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/keys/exa HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: " + token + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(100):
                sock.sendall(chunk)
                sent += 1
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: exactly what should happen
        assert read_status(sock) == 413
    grown = rss_bytes() - before
    assert grown < 30 * MB, f"RSS grew by {grown / MB:.0f} MB after {sent} MB sent"


@pytest.mark.anyio
async def test_405_allow_lists_put_and_delete(client: httpx.AsyncClient, auth: Auth) -> None:
    """GET /v1/keys/gemini is 405 and Allow names both methods the path has."""
    response = await client.get("/v1/keys/gemini", headers=auth("alice"))
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"PUT", "DELETE"}


@pytest.mark.anyio
async def test_trailing_slash_is_not_redirected(client: httpx.AsyncClient, auth: Auth) -> None:
    """PUT /v1/keys/gemini/ is 401 without a token and 404 with one; never a 307."""
    body = {"api_key": "gemini-key-0123456789"}
    anonymous = await client.put("/v1/keys/gemini/", json=body)
    assert anonymous.status_code == 401
    signed_in = await client.put("/v1/keys/gemini/", json=body, headers=auth("alice"))
    assert signed_in.status_code == 404
    assert "location" not in signed_in.headers


@pytest.mark.anyio
async def test_put_requires_plain_application_json(client: httpx.AsyncClient, auth: Auth) -> None:
    """`application/vnd.x+json` and text/plain are 415; application/json with charset works."""
    body = b'{"api_key": "exa-key-0123456789"}'
    for media_type in ("application/vnd.evil+json", "text/plain", "application/merge-patch+json"):
        response = await client.put(
            "/v1/keys/exa", content=body, headers={**auth("a"), "content-type": media_type}
        )
        assert response.status_code == 415, media_type
    ok = await client.put(
        "/v1/keys/exa",
        content=body,
        headers={**auth("a"), "content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_access_log_redacts_credential_query_values() -> None:
    """uvicorn's access record with ?access_token= and ?key= is logged with the values gone."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/v1/keys?access_token=eyJ.secret.sig&x=1&KEY=abc", "1.1", 401),
        None,
    )
    assert QueryRedactionFilter().filter(record)
    line = record.getMessage()
    assert "eyJ.secret.sig" not in line
    assert "abc" not in line
    assert "x=1" in line
    assert redact_query("/v1/keys") == "/v1/keys"


@pytest.mark.anyio
async def test_access_log_filter_is_installed(app: FastAPI) -> None:
    """Building the app puts the filter on uvicorn's access logger."""
    filters = logging.getLogger("uvicorn.access").filters
    assert any(isinstance(f, QueryRedactionFilter) for f in filters)
