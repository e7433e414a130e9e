"""What each wiring style costs per request, in process: `python -m bench.wiring`.

One app, one warm user (token and records cached), one endpoint per style that injects the
Gemini client and returns without calling upstream; requests sent one after another through
httpx's ASGI transport, rounds alternated, best round reported. In-process figures include
the test client's own cost, so compare the styles with each other, not with served figures.
"""

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Depends, FastAPI

from keyscope.app.deps import GeminiDep
from keyscope.app.main import integrate
from keyscope.app.testing import auth_headers, make_test_container, migrate, running
from keyscope.containers import Container
from keyscope.providers.gemini import GeminiClient

router = APIRouter()


@router.get("/none")
async def no_injection() -> dict[str, bool]:
    return {"ok": True}


@router.get("/annotated-async")
async def annotated_async(gemini: GeminiDep) -> dict[str, bool]:
    return {"ok": gemini is not None}


@router.get("/annotated-def")
def annotated_def(gemini: GeminiDep) -> dict[str, bool]:
    return {"ok": gemini is not None}


@router.get("/provide-async")
@inject
async def provide_async(
    gemini: GeminiClient = Depends(Provide[Container.gemini_client]),
) -> dict[str, bool]:
    return {"ok": gemini is not None}


@router.get("/provide-def")
@inject
def provide_def(
    gemini: GeminiClient = Depends(Provide[Container.gemini_client]),
) -> dict[str, bool]:
    return {"ok": gemini is not None}


STYLES = ["/none", "/annotated-async", "/annotated-def", "/provide-async", "/provide-def"]
REQUESTS = 300
ROUNDS = 7


async def measure() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        migrate(url)
        container = make_test_container(url, gemini_base_url="http://127.0.0.1:9")
        container.wire(modules=[__name__])
        app = FastAPI()
        app.include_router(router)
        integrate(app, container)
        headers = auth_headers(container, "bench-user")
        best: dict[str, float] = {}
        async with running(app) as started:
            transport = httpx.ASGITransport(app=started)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                put = await client.put("/v1/keys/gemini", json={"api_key": "k"}, headers=headers)
                assert put.status_code == 200, put.text
                for _ in range(ROUNDS):
                    for path in STYLES:
                        assert (await client.get(path, headers=headers)).status_code == 200
                        started_at = time.perf_counter()
                        for _ in range(REQUESTS):
                            await client.get(path, headers=headers)
                        per_request = (time.perf_counter() - started_at) / REQUESTS * 1e6
                        best[path] = min(best.get(path, per_request), per_request)
        container.unwire()
        return best


def main() -> None:
    best = asyncio.run(measure())
    floor = best["/none"]
    print(f"{'style':<18} {'µs/request':>11} {'over no injection':>18}")
    for path in STYLES:
        print(f"{path[1:]:<18} {best[path]:>11.0f} {best[path] - floor:>+17.0f}")


if __name__ == "__main__":
    main()
