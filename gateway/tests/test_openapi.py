"""The OpenAPI document and the Swagger UI that renders it, served by the gateway itself."""

from __future__ import annotations

import httpx


async def test_openapi_document_is_3_1(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] == "taskmesh API"
    assert "/readyz" in document["paths"]


async def test_docs_serves_swagger_ui_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    initializer = await client.get("/docs/swagger-initializer.js")
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")

    assert page.status_code == 200
    assert "https://" not in page.text
    assert "<script>" not in page.text
    assert "/api/v1/openapi.json" in initializer.text
    assert bundle.status_code == 200


async def test_docs_routes_are_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()

    assert not [path for path in document["paths"] if path.startswith("/docs")]


async def test_every_api_post_declares_the_idempotency_key(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()

    posts = {
        path: operations["post"]
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/") and "post" in operations
    }
    assert "/api/v1/tasks" in posts
    for path, post in posts.items():
        headers = [p["name"] for p in post.get("parameters", []) if p["in"] == "header"]
        assert headers.count("Idempotency-Key") == 1, path
