"""Print the gateway's OpenAPI document: `python -m taskmesh_gateway.openapi_document`.

The web app's typed client is generated from this output (`make web-api`); it is the same
document the running gateway serves at /api/v1/openapi.json.
"""

from __future__ import annotations

import json
import sys

from taskmesh_gateway.app import create_app
from taskmesh_gateway.settings import GatewaySettings


def openapi_text() -> str:
    """The OpenAPI document as stable, indented JSON text."""
    app = create_app(GatewaySettings())
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(openapi_text())
