"""The fakes themselves: vendor wire shapes, recording, isolation between vendors, load."""

import asyncio
import json
import threading

import httpx
import pytest

from keyscope.providers import ProviderName
from keyscope.providers.fakes import GEMINI_MODELS, FakeUpstreams

pytestmark = pytest.mark.anyio


async def test_missing_key_is_refused_in_each_vendors_shape(fakes: FakeUpstreams) -> None:
    """No key: Google's 403 PERMISSION_DENIED, Exa's and Copilot Cloud's 401; key recorded None."""
    async with httpx.AsyncClient() as client:
        gemini = await client.post(
            f"{fakes.gemini_base_url}/v1beta/models/gemini-2.5-flash:generateContent", json={}
        )
        exa = await client.post(f"{fakes.exa_base_url}/search", json={"query": "q"})
        copilot = await client.post(fakes.copilotkit_runtime_url, content=b"{}")
    assert gemini.status_code == 403
    assert gemini.json()["error"]["status"] == "PERMISSION_DENIED"
    assert exa.status_code == 401
    assert "error" in exa.json()
    assert copilot.status_code == 401
    assert [r.key for r in fakes.records()] == [None, None, None]


async def test_vendors_listen_apart(fakes: FakeUpstreams) -> None:
    """A client pointed at the wrong vendor gets a 404, not another vendor's answer."""
    async with httpx.AsyncClient(headers={"x-api-key": "k", "x-goog-api-key": "k"}) as client:
        wrong = await client.post(f"{fakes.gemini_base_url}/search", json={"query": "q"})
        right = await client.post(f"{fakes.exa_base_url}/search", json={"query": "q"})
    assert wrong.status_code == 404
    assert right.status_code == 200
    assert [r.provider for r in fakes.records()] == [ProviderName.GEMINI, ProviderName.EXA]


async def test_model_list_is_google_shaped(fakes: FakeUpstreams) -> None:
    """GET /v1beta/models answers {"models": [{"name": "models/…", …}]}."""
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{fakes.gemini_base_url}/v1beta/models", headers={"x-goog-api-key": "k"}
        )
    names = [m["name"] for m in response.json()["models"]]
    assert names == [f"models/{name}" for name in GEMINI_MODELS]


async def test_many_connections_and_requests(fakes: FakeUpstreams) -> None:
    """150 connections open at once, 2,100 keep-alive requests over them: all served, recorded.

    A minimal raw HTTP/1.1 client drives the load: httpx's own per-request cost at this
    concurrency is several times the fake's and would only measure httpx.
    """
    host, port = fakes.exa_base_url.removeprefix("http://").split(":")
    connections, per_connection = 150, 14
    opened = asyncio.Event()
    ready = 0

    async def connection(n: int) -> list[int]:
        nonlocal ready
        reader, writer = await asyncio.open_connection(host, int(port))
        ready += 1
        if ready == connections:
            opened.set()
        await opened.wait()  # every connection is open before any request is sent
        statuses = []
        try:
            for i in range(per_connection):
                body = json.dumps({"query": f"c{n}-r{i}", "numResults": 1}).encode()
                writer.write(
                    b"POST /search HTTP/1.1\r\nHost: fake\r\nx-api-key: key-%d\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (n, len(body), body)
                )
                statuses.append(await read_response(reader))
        finally:
            writer.close()
            await writer.wait_closed()
        return statuses

    async with asyncio.timeout(20):
        results = await asyncio.gather(*(connection(n) for n in range(connections)))
    assert {status for statuses in results for status in statuses} == {200}
    records = fakes.records(ProviderName.EXA)
    assert len(records) == connections * per_connection
    assert {r.key for r in records} == {f"key-{n}" for n in range(connections)}


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one Content-Length-framed HTTP/1.1 response; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines if line)
    await reader.readexactly(int(headers["Content-Length"]))
    return int(status_line.split()[1])


def test_records_are_thread_safe_and_clearable(fakes: FakeUpstreams) -> None:
    """Requests from many threads are all recorded; clear() empties the log."""

    def worker(n: int) -> None:
        with httpx.Client() as client:
            for i in range(10):
                client.post(
                    f"{fakes.exa_base_url}/search",
                    json={"query": f"t{n}-{i}"},
                    headers={"x-api-key": f"thread-{n}"},
                )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.json()["query"] for r in fakes.records()) == sorted(
        f"t{n}-{i}" for n in range(8) for i in range(10)
    )
    fakes.clear()
    assert fakes.records() == []


def test_close_stops_listening() -> None:
    """After close() the ports refuse connections."""
    fakes = FakeUpstreams()
    url = fakes.exa_base_url
    fakes.close()
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/search", json={"query": "q"}, headers={"x-api-key": "k"})
