"""Security headers on every response; CORS only for the configured origins; HSTS behind TLS."""

from __future__ import annotations

import httpx
import pytest
from taskmesh_gateway.app import create_app
from taskmesh_gateway.settings import GatewaySettings


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/no-such-thing", "/_probe/crash"])
async def test_security_headers_present(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert "strict-transport-security" not in response.headers


async def test_docs_page_may_load_only_its_own_scripts(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


async def test_hsts_only_when_tls_is_trusted(settings: GatewaySettings) -> None:
    app = create_app(settings.model_copy(update={"trusted_tls": True}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://gateway"
    ) as client:
        response = await client.get("/healthz")

    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_only_for_configured_origin(
    client: httpx.AsyncClient, settings: GatewaySettings
) -> None:
    [allowed] = settings.cors_origins

    welcome = await client.get("/healthz", headers={"Origin": allowed})
    stranger = await client.get("/healthz", headers={"Origin": "https://evil.example"})

    assert welcome.headers["access-control-allow-origin"] == allowed
    assert "x-request-id" in welcome.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in stranger.headers


async def test_cors_preflight_allows_configured_origin_only(
    client: httpx.AsyncClient, settings: GatewaySettings
) -> None:
    [allowed] = settings.cors_origins
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }

    welcome = await client.options("/_probe/notes", headers={"Origin": allowed, **preflight})
    stranger = await client.options(
        "/_probe/notes", headers={"Origin": "https://evil.example", **preflight}
    )

    assert welcome.status_code == 200
    assert welcome.headers["access-control-allow-origin"] == allowed
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers


async def test_no_cors_headers_without_configured_origins(settings: GatewaySettings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": []}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        response = await client.get("/healthz", headers={"Origin": "https://app.taskmesh.test"})

    assert "access-control-allow-origin" not in response.headers
