"""A JWKS key set that honours key removal and picks up new keys quickly, with bounded fetches.

`jwt.PyJWKClient(cache_keys=True)` keeps every key it has ever seen by `kid`, so a key the
identity provider withdrew keeps verifying until restart. Here the whole set is replaced by
each fetch, so:

* a key absent from the latest fetched set stops verifying once the set is refreshed, and the
  set is refreshed at least every `refresh_seconds` (the next token after that waits for it);
* an unknown `kid` triggers a refresh, so a rotated key works as soon as it is published,
  unless a fetch was attempted less than `min_fetch_interval` ago: that interval is the most a
  new key can wait, and it bounds fetches whatever `kid`s callers make up (one per interval).

Fetches are single-flight (callers that arrive during a fetch await the same one and see the
fresh set). When a fetch fails the last good set stays in use (an identity provider outage
must not lock every user out) and the fetch is retried no sooner than `min_fetch_interval`.
Fetching is an async httpx call on the event loop: it needs no worker thread, so it never
waits behind `def` endpoints that hold the default thread pool (nor takes a database
thread); `key_now()` never touches the network.
"""

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import anyio
import httpx
import jwt

MAX_JWKS_BYTES = 512 * 1024


class Lookup(Enum):
    """What `key_now()` found when it had no key to hand out."""

    FETCH = "fetch"  # the answer needs a fetch: await `key()`
    UNKNOWN = "unknown"  # not in the current set, and a fetch is not allowed yet


Fetch = Callable[[str, float], Awaitable[bytes]]


def url_fetcher(ssl_context: ssl.SSLContext | None = None) -> Fetch:
    """GET a JWKS URL (http or https only) within `within` seconds in all, at most
    MAX_JWKS_BYTES; a client per fetch (fetches are minutes apart), one SSL context."""
    context = ssl_context or httpx.create_ssl_context()

    async def fetch(url: str, within: float) -> bytes:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the JWKS URL must be http(s)")
        body = bytearray()
        with anyio.fail_after(within):  # httpx's timeouts bound each read, not the whole
            # Redirects are followed (no credentials travel with a JWKS request).
            async with (
                httpx.AsyncClient(verify=context, timeout=within, follow_redirects=True) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                response.raise_for_status()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError("JWKS document too large")
        return bytes(body)

    return fetch


def parse_jwks(body: bytes) -> dict[str, Any]:
    """Signing keys by `kid` (keys without a `kid`, or for encryption, are left out)."""
    document = json.loads(body)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # an algorithm we cannot use; the others still count
    return keys


class JwksKeys:
    """The identity provider's current signing keys, refreshed as described above."""

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float = 300.0,
        min_fetch_interval: float = 5.0,
        timeout: float = 5.0,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_fetch_interval <= 0 or refresh_seconds < min_fetch_interval:
            raise ValueError("need 0 < min_fetch_interval <= refresh_seconds")
        self.url = url
        self.refresh_seconds = refresh_seconds
        self.min_fetch_interval = min_fetch_interval
        self._timeout = timeout
        self._fetch = fetch or url_fetcher()
        self._clock = clock
        self._inflight: asyncio.Task[None] | None = None
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self.fetches = 0  # attempts so far (for tests and operators)

    def key_now(self, kid: str) -> Any:
        """The key for `kid` from the current set, or a `Lookup` saying what is missing."""
        now = self._clock()
        if self._is_stale(now):
            return Lookup.FETCH
        key = self._keys.get(kid)
        if key is not None:
            return key
        return Lookup.FETCH if self._may_fetch(now) else Lookup.UNKNOWN

    async def key(self, kid: str) -> Any | None:
        """The key for `kid`, fetching the set first when it is stale or lacks `kid`; None
        when the (possibly refreshed) set has no such key. Call it on the event loop."""
        inflight = self._inflight
        if inflight is None:
            now = self._clock()
            if self._is_stale(now) or (kid not in self._keys and self._may_fetch(now)):
                inflight = self._inflight = asyncio.ensure_future(self._refresh(now))
                inflight.add_done_callback(self._fetched)
        if inflight is not None:
            # Shielded: a caller that gives up (its request was cancelled) leaves the shared
            # fetch running for the others.
            await asyncio.shield(inflight)
        return self._keys.get(kid)

    def _fetched(self, task: "asyncio.Task[None]") -> None:
        if self._inflight is task:
            self._inflight = None

    def seconds_fresh(self) -> float:
        """How much longer the current set counts as fresh (0 when it is due for a fetch):
        verified tokens are cached no longer, so a removed key's tokens stop with the set."""
        if self._fetched_at is None:
            return 0.0
        return max(0.0, self._fetched_at + self.refresh_seconds - self._clock())

    def _is_stale(self, now: float) -> bool:
        if self._fetched_at is None or now - self._fetched_at >= self.refresh_seconds:
            # Stale, but a failed fetch is not retried before the interval: keep the last set.
            return self._may_fetch(now)
        return False

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_fetch_interval

    async def _refresh(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch(self.url, self._timeout))
        except (OSError, ValueError, httpx.HTTPError):
            # Unreachable, an error status, too slow (TimeoutError is an OSError) or not a key
            # set: keep the last good set; retried after min_fetch_interval.
            return
        self._keys = keys
        self._fetched_at = now

    def __repr__(self) -> str:
        return f"JwksKeys({self.url!r}, keys={sorted(self._keys)}, fetches={self.fetches})"
