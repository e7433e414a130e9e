"""A Python keep-alive HTTP/1.1 client on asyncio protocols (uvloop when installed).

Two uses: the load generator when wrk is absent (`python -m bench.load.pyclient`, run pinned
to its own CPU, prints one JSON line), and the wrong-key check (`fetch_all`: every request
once, many in flight, bodies kept). One request in flight per connection, like wrk.
"""

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import cast

from bench.load import LoadResult


def new_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when installed (it is a keyscope dependency on POSIX)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def build_request(port: int, path: str, token: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


@dataclass
class _Work:
    requests: list[bytes]
    deadline: float | None  # load mode: rotate until then; None: each request once
    latencies_ns: list[int] = field(default_factory=list)
    answers: list[tuple[int, int, bytes]] = field(default_factory=list)  # index, status, body
    keep_bodies: bool = False
    errors: int = 0
    close_every: int = 0  # > 0: a connection closes after that many answers, and reconnects
    _next: int = 0

    @property
    def finished(self) -> bool:
        if self.deadline is None:
            return self._next >= len(self.requests)
        return time.perf_counter() >= self.deadline

    def take(self) -> int | None:
        if self.deadline is None:
            if self._next >= len(self.requests):
                return None
            self._next += 1
            return self._next - 1
        if time.perf_counter() >= self.deadline:
            return None
        self._next += 1
        return self._next % len(self.requests)


class _Connection(asyncio.Protocol):
    def __init__(self, work: _Work, closed: "asyncio.Future[None]") -> None:
        self._work = work
        self._closed = closed
        self._buffer = b""
        self._index: int | None = None
        self._sent = 0
        self._answered = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is a Transport in behaviour, not by isinstance.
        self._transport = cast(asyncio.Transport, transport)
        self._send_next()

    def _send_next(self) -> None:
        assert self._transport is not None
        self._index = self._work.take()
        if self._index is None:
            self._transport.close()
            return
        self._sent = time.perf_counter_ns()
        self._transport.write(self._work.requests[self._index])

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 or self._index is None:
            return
        head = self._buffer[:head_end].lower()
        length = _content_length(head)
        if length is None:  # our servers always send one; anything else is a broken answer
            self._work.errors += 1
            self._index = None
            assert self._transport is not None
            self._transport.close()
            return
        end = head_end + 4 + length
        if len(self._buffer) < end:
            return
        status = int(head[9:12])
        body, self._buffer = self._buffer[head_end + 4 : end], self._buffer[end:]
        work = self._work
        work.latencies_ns.append(time.perf_counter_ns() - self._sent)
        if not 200 <= status < 300:
            work.errors += 1
        if work.keep_bodies:
            work.answers.append((self._index, status, body))
        self._answered += 1
        if work.close_every and self._answered % work.close_every == 0:
            self._index = None
            assert self._transport is not None
            self._transport.close()  # _drive opens the next connection
            return
        self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - asyncio's signature
        if self._index is not None:  # a request was in flight
            self._work.errors += 1
        if not self._closed.done():
            self._closed.set_result(None)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            return int(value)
    return None


async def _drive(port: int, work: _Work) -> None:
    loop = asyncio.get_running_loop()
    while not work.finished:
        closed: asyncio.Future[None] = loop.create_future()
        try:
            await loop.create_connection(partial(_Connection, work, closed), "127.0.0.1", port)
        except OSError:
            work.errors += 1
            await asyncio.sleep(0.01)
            continue
        await closed


def _percentile(sorted_ns: list[int], pct: float) -> float:
    if not sorted_ns:
        return 0.0
    rank = max(0, min(len(sorted_ns) - 1, round(pct / 100 * len(sorted_ns)) - 1))
    return sorted_ns[rank] / 1e6


async def load(
    requests: list[bytes], port: int, *, connections: int, seconds: float, close_every: int = 0
) -> LoadResult:
    started = time.perf_counter()
    work = _Work(requests, deadline=started + seconds, close_every=close_every)
    await asyncio.gather(*(_drive(port, work) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies = sorted(work.latencies_ns)
    return LoadResult(
        generator="python",
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        errors=work.errors,
    )


async def fetch_all(
    requests: list[bytes], port: int, *, connections: int
) -> list[tuple[int, int, bytes]]:
    """Send every request once, `connections` at a time; (index, status, body) per answer."""
    work = _Work(requests, deadline=None, keep_bodies=True)
    await asyncio.gather(*(_drive(port, work) for _ in range(connections)))
    return work.answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("tokens", type=Path)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--close-every", type=int, default=0, help="reconnect after that many answers (0: never)"
    )
    args = parser.parse_args()
    tokens = args.tokens.read_text().split()
    requests = [build_request(args.port, args.path, t) for t in tokens]
    with asyncio.Runner(loop_factory=new_event_loop()) as runner:
        result = runner.run(
            load(
                requests,
                args.port,
                connections=args.connections,
                seconds=args.seconds,
                close_every=args.close_every,
            )
        )
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()
