"""Helpers for the provider tests: unique fake keys, a leak check for errors, fake timings."""

import socket
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

# The fakes' `slow…` keys answer after SLOW_SECONDS, longer than the clients' READ_TIMEOUT,
# so those keys time out quickly.
SLOW_SECONDS = 1.0
READ_TIMEOUT = 0.4
STREAM_CHUNKS = 5
STREAM_DELAY = 0.03


def new_key(prefix: str = "user") -> str:
    """A unique key whose prefix selects the fake's behaviour (see providers.fakes)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def assert_not_leaked(secret: str, exc: BaseException) -> None:
    """The key appears in none of the ways an error reaches a log or a response."""
    surfaces = [
        str(exc),
        repr(exc),
        str(getattr(exc, "detail", "")),
        "".join(traceback.format_exception(exc)),
    ]
    for text in surfaces:
        assert secret not in text, f"key leaked into {type(exc).__name__}: {text!r}"


@contextmanager
def refusing_url() -> Iterator[str]:
    """A loopback URL whose port is reserved (bound, not listening): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
