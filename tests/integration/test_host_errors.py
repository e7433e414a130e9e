"""The host app's own errors keep FastAPI's shapes byte for byte with keyscope integrated;
keyscope's routes answer problem+json; opting in makes every error a problem (never a repr)."""

from collections.abc import Callable

import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from keyscope.app.main import integrate
from keyscope.app.testing import app_client
from keyscope.containers import Container

pytestmark = pytest.mark.anyio

Auth = Callable[[str], dict[str, str]]


class Item(BaseModel):
    name: str
    count: int


def host_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        raise HTTPException(404, detail={"code": "item-missing", "id": item_id})

    @app.post("/items")
    async def add_item(item: Item) -> Item:
        return item

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418, detail="short and stout", headers={"X-Tea": "earl grey"})

    return app


REQUESTS = [
    ("GET", "/items/7", None),
    ("GET", "/items/not-a-number", None),
    ("POST", "/items", {"name": "x", "count": "many"}),
    ("POST", "/items", {"count": 1}),
    ("GET", "/teapot", None),
    ("GET", "/no/such/route", None),
    ("DELETE", "/items/7", None),
]


async def _answers(app: FastAPI) -> list[tuple[int, str | None, bytes, str | None]]:
    answers = []
    async with app_client(app) as client:
        for method, path, body in REQUESTS:
            response = await client.request(method, path, json=body)
            answers.append(
                (
                    response.status_code,
                    response.headers.get("content-type"),
                    response.content,
                    response.headers.get("x-tea"),
                )
            )
    return answers


async def test_host_error_bodies_are_byte_identical(container: Container) -> None:
    """404/405/418/422 and HTTPException(detail=dict) bodies, content types and headers are the
    same bytes with and without keyscope integrated."""
    without = await _answers(host_app())
    integrated = host_app()
    integrate(integrated, container)
    assert await _answers(integrated) == without
    assert without[0][2] == b'{"detail":{"code":"item-missing","id":7}}'


async def test_keyscope_routes_answer_problems_in_a_host_app(
    container: Container, auth: Auth
) -> None:
    """keyscope's own routes answer 422 and 404 as problem+json inside the host app."""
    app = host_app()
    integrate(app, container)
    async with app_client(app) as client:
        invalid = await client.put("/v1/keys/gemini", json={"wrong": 1}, headers=auth("alice"))
        unknown = await client.delete("/v1/keys/gemini", headers=auth("alice"))
        anonymous = await client.get("/v1/keys")
    for response, status in ((invalid, 422), (unknown, 404), (anonymous, 401)):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert set(response.json()) >= {"type", "title", "status", "detail"}


async def test_opt_in_renders_structured_detail_as_json(container: Container) -> None:
    """problem_json_everywhere=True: the host's HTTPException(detail=dict) becomes a problem
    whose structured detail stays JSON; nothing is a Python repr."""
    app = host_app()
    integrate(app, container, problem_json_everywhere=True)
    async with app_client(app) as client:
        response = await client.get("/items/7")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Not Found"
    assert body["errors"] == {"code": "item-missing", "id": 7}
    assert "{'code'" not in response.text
