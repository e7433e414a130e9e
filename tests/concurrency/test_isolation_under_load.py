"""The CI gate for isolation: many users, interleaved requests, a real uvicorn server.

30 users x 14 requests (every kind twice each), shuffled and run 20 at a time, across all
three providers, through `async def` and `def` endpoints, a streaming body and a background
task. Every request the
fake upstreams receive is matched to the request that caused it: it must carry that user's
key (0 wrong, 0 missing, 0 duplicated), and UserKeys must load at most once per request.
"""

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from dependency_injector import providers as di
from fastapi import FastAPI

from keyscope.app.awaitables import awaited
from keyscope.app.keys.policy import KeyPolicy
from keyscope.app.keys.store import KeyStore
from keyscope.app.keys.user_keys import UserKeys, load_user_keys
from keyscope.app.live_server import live_server
from keyscope.app.main import create_app
from keyscope.app.scope import current_scope
from keyscope.app.scoped_providers import RequestScoped
from keyscope.app.security.tokens import Principal
from keyscope.containers import Container
from keyscope.providers import ProviderName
from keyscope.providers.fakes import FakeUpstreams, UpstreamRecord
from tests.probe_routes import router as probe_router
from tests.support.load import CLIENT_TIMEOUT, gather_with_progress, wait_for_count

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 30
REQUESTS_PER_USER = 14  # each of the 7 kinds twice
IN_FLIGHT = 20  # enough to interleave every user's requests; more only queues on 2 cores
NONCE_HEADER = "x-probe-nonce"

# kind -> (method, path template, JSON body builder, upstream calls it makes)
KINDS: dict[str, tuple[str, str, Callable[[str], object], tuple[ProviderName, ...]]] = {
    "gemini": ("POST", "/v1/gemini/generate", lambda tag: {"prompt": tag}, (ProviderName.GEMINI,)),
    "exa": (
        "POST",
        "/v1/exa/search",
        lambda tag: {"query": tag, "num_results": 1},
        (ProviderName.EXA,),
    ),
    "runtime": (
        "POST",
        "/v1/copilotkit/runtime",
        lambda tag: {"probe": tag},
        (ProviderName.COPILOTKIT,),
    ),
    "both": (
        "POST",
        "/probe/both/{nonce}",
        lambda _tag: None,
        (ProviderName.GEMINI, ProviderName.EXA),
    ),
    "sync": ("POST", "/probe/sync/{nonce}", lambda _tag: None, (ProviderName.EXA,)),
    "stream": ("POST", "/probe/stream/{nonce}", lambda _tag: None, (ProviderName.GEMINI,)),
    "background": ("POST", "/probe/background/{nonce}", lambda _tag: None, (ProviderName.EXA,)),
}


def _user_key(user: str, provider: ProviderName) -> str:
    prefix = "ck_pub_" if provider is ProviderName.COPILOTKIT else f"{provider.value}-"
    return f"{prefix}{user}-{random.getrandbits(64):016x}"


def _tag_of(record: UpstreamRecord) -> str:
    body = record.json()
    if record.provider is ProviderName.GEMINI:
        return str(body["contents"][0]["parts"][0]["text"])
    if record.provider is ProviderName.EXA:
        return str(body["query"])
    return str(body["probe"])


@dataclass
class LoadResult:
    requests: int
    records: list[UpstreamRecord]
    wrong: list[UpstreamRecord]
    missing: Counter[tuple[str, ProviderName]]
    duplicated: Counter[tuple[str, ProviderName]]
    runtime_chunks: list[int]
    seconds: float


async def run_load(
    app: FastAPI,
    upstreams: FakeUpstreams,
    make_token: Callable[..., str],
    users: int,
    per_user: int,
) -> LoadResult:
    """Store keys for `users` users, fire `users * per_user` shuffled requests, match records."""
    names = [f"user-{i:02d}" for i in range(users)]
    keys = {u: {p: _user_key(u, p) for p in ProviderName} for u in names}
    tokens = {u: make_token(u) for u in names}
    plan = [(u, n, kind) for u in names for n, kind in zip(range(per_user), _kinds(), strict=False)]
    random.shuffle(plan)
    chunk_counts: list[int] = []
    with live_server(app) as base_url:
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=CLIENT_TIMEOUT
        ) as client:
            for user in names:
                for provider, key in keys[user].items():
                    put = await client.put(
                        f"/v1/keys/{provider.value}",
                        json={"api_key": key},
                        headers={"Authorization": f"Bearer {tokens[user]}"},
                    )
                    assert put.status_code == 200, put.text
            upstreams.clear()
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def fire(user: str, n: int, kind: str) -> None:
                method, path, body, _ = KINDS[kind]
                nonce = f"{user}-{n}"
                headers = {"Authorization": f"Bearer {tokens[user]}", NONCE_HEADER: nonce}
                async with gate:
                    await asyncio.sleep(random.random() / 100)
                    request = client.build_request(
                        method,
                        path.format(nonce=nonce),
                        json=body(f"{user}|{nonce}"),
                        headers=headers,
                    )
                    response = await client.send(request, stream=True)
                    chunks = [c async for c in response.aiter_raw() if c]
                    await response.aclose()
                assert response.status_code == 200, (kind, b"".join(chunks)[:300])
                if kind == "runtime":
                    chunk_counts.append(len(chunks))

            started = time.monotonic()
            await gather_with_progress(fire(*item) for item in plan)
            elapsed = time.monotonic() - started
            expected = Counter((f"{u}|{u}-{n}", p) for u, n, kind in plan for p in KINDS[kind][3])
            # Background tasks finish after their responses; the fakes run in another thread
            # and signal nothing, so poll while their calls keep arriving.
            await wait_for_count(lambda: len(upstreams.records()), sum(expected.values()))
    records = upstreams.records()
    seen = Counter((_tag_of(r), r.provider) for r in records)
    return LoadResult(
        requests=len(plan),
        records=records,
        wrong=[r for r in records if r.key != keys[_tag_of(r).split("|")[0]][r.provider]],
        missing=expected - seen,
        duplicated=seen - expected,
        runtime_chunks=chunk_counts,
        seconds=elapsed,
    )


async def test_every_upstream_call_carries_the_requesting_users_key(
    container: Container, upstreams: FakeUpstreams, make_token: Callable[..., str]
) -> None:
    """420 interleaved requests from 30 users: 0 wrong keys, 0 missing, loads <= 1/request."""
    loads: Counter[str] = Counter()

    async def counting_loader(principal: Principal, store: KeyStore, policy: KeyPolicy) -> UserKeys:
        loads[current_scope().header(NONCE_HEADER) or "?"] += 1
        return await awaited(load_user_keys(principal, store, policy))

    # Override style 2: keep once-per-request by overriding with another RequestScoped.
    container.user_keys.override(
        RequestScoped(
            counting_loader, container.principal, container.key_store, container.key_policy
        )
    )
    app = create_app(container)
    app.include_router(probe_router)
    result = await run_load(app, upstreams, make_token, USERS, REQUESTS_PER_USER)
    print(  # the figure a reader of the CI log wants
        f"\n{result.requests} requests, {len(result.records)} upstream calls"
        f" in {result.seconds:.1f}s"
    )
    assert result.wrong == [], f"{len(result.wrong)} upstream calls carried another user's key"
    assert not result.missing, f"{sum(result.missing.values())} upstream calls never arrived"
    assert not result.duplicated
    assert len(loads) == result.requests
    assert max(loads.values()) == 1, "UserKeys loaded more than once in a request"
    assert max(result.runtime_chunks) > 1, "the runtime body was not streamed chunk by chunk"


async def test_the_gate_catches_a_process_wide_user_keys(
    container: Container, upstreams: FakeUpstreams, make_token: Callable[..., str]
) -> None:
    """Planted bug: UserKeys as a Singleton (the classic mistake) must make the gate fail."""
    container.user_keys.override(
        di.Singleton(load_user_keys, container.principal, container.key_store, container.key_policy)
    )
    app = create_app(container)
    app.include_router(probe_router)
    result = await run_load(app, upstreams, make_token, users=5, per_user=7)
    assert len(result.wrong) > 0


def _kinds() -> Iterator[str]:
    """An endless cycle of request kinds."""
    return itertools.cycle(KINDS)
