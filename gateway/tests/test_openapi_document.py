"""The web app's typed client is generated from the gateway's current OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from taskmesh_gateway.openapi_document import openapi_text

GENERATED = Path(__file__).resolve().parents[2] / "web" / "src" / "api" / "generated"


def test_web_client_is_generated_from_the_current_document() -> None:
    assert (GENERATED / "openapi.json").read_text(encoding="utf-8") == openapi_text(), (
        "web/src/api/generated/ is stale: run `make web-api` and commit the result"
    )
