"""integrate(app, prefix=...): everything keyscope keys on its own paths follows the prefix.

The OpenAPI post-processing (app/openapi.py) and the body limits (app/body_limit.py) name
keyscope's paths; under a prefix they must still find the operations and routes they mean.
"""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from keyscope.app.main import integrate
from keyscope.app.testing import app_client
from keyscope.containers import Container

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]
PREFIX = "/ks"


def _problem_codes(operation: dict[str, Any]) -> set[int]:
    return {
        int(code)
        for code, response in operation["responses"].items()
        if "application/problem+json" in response.get("content", {})
    }


def _prefixed_app(container: Container) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/keys/mine")  # the host's own route, at a path keyscope would use unprefixed
    async def host_route() -> dict[str, str]:
        return {"host": "yes"}

    integrate(app, container, prefix=PREFIX, health_routes=True, provider_routes=True)
    return app


async def test_openapi_problem_responses_follow_the_prefix(container: Container) -> None:
    """Each keyscope operation documents the same problem responses with and without a prefix,
    and the host's own operation at an unprefixed keyscope-looking path is left alone."""
    plain = FastAPI()
    integrate(plain, container, health_routes=True, provider_routes=True)
    expected = plain.openapi()["paths"]
    prefixed = _prefixed_app(container).openapi()["paths"]
    for path, operations in expected.items():
        for method, operation in operations.items():
            moved = prefixed[PREFIX + path][method]
            assert _problem_codes(moved) == _problem_codes(operation), (method, path)
            assert moved.get("security") == operation.get("security"), (method, path)
    put = prefixed[PREFIX + "/v1/keys/{provider}"]["put"]
    assert {413, 415}.issubset(_problem_codes(put))
    assert 503 in _problem_codes(prefixed[PREFIX + "/readyz"]["get"])
    assert _problem_codes(prefixed["/v1/keys/mine"]["get"]) == set()


async def test_keys_body_limit_applies_under_the_prefix(container: Container, auth: Auth) -> None:
    """A PUT above the keys API's limit (8 KiB by default, far below the app-wide default) is
    a 413 at /ks/v1/keys/..., announced or chunked; the host's /v1/keys/... is not bounded."""
    limit = container.settings().keys_body_limit
    assert limit < container.settings().body_limit
    app = _prefixed_app(container)
    body = b'{"api_key": "' + b"k" * (limit + 1) + b'"}'

    async def chunks() -> Any:
        yield body

    async with app_client(app) as client:
        headers = {**auth("alice"), "content-type": "application/json"}
        announced = await client.put(f"{PREFIX}/v1/keys/gemini", content=body, headers=headers)
        assert announced.status_code == 413, announced.text
        chunked = await client.put(f"{PREFIX}/v1/keys/gemini", content=chunks(), headers=headers)
        assert chunked.status_code == 413, chunked.text
        # Authentication before the body, under the prefix too.
        anonymous = await client.put(
            f"{PREFIX}/v1/keys/gemini", content=body, headers={"content-type": "application/json"}
        )
        assert anonymous.status_code == 401
        # The host's own route at the unprefixed path is none of keyscope's business.
        host = await client.request("GET", "/v1/keys/mine", content=body)
        assert host.status_code == 200


async def test_copilotkit_config_names_the_prefixed_runtime(
    container: Container, auth: Auth
) -> None:
    """The runtime URL handed to the frontend is where the runtime proxy is actually served."""
    async with app_client(_prefixed_app(container)) as client:
        stored = await client.put(
            f"{PREFIX}/v1/keys/copilotkit?validate=false",
            json={"api_key": "ck_pub_prefix-test"},
            headers=auth("alice"),
        )
        assert stored.status_code == 200, stored.text
        config = await client.get(f"{PREFIX}/v1/copilotkit/config", headers=auth("alice"))
    assert config.status_code == 200, config.text
    assert config.json()["runtime_url"] == f"{PREFIX}/v1/copilotkit/runtime"
