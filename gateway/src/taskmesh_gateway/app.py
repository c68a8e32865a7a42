"""The gateway's composition root: `create_app` wires settings, middleware, errors and routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
from taskmesh_chassis.identity import GrpcJwksProvider, TokenVerifier
from taskmesh_chassis.tracing import flush_spans
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from taskmesh_gateway.admission import AdmissionMiddleware, Gatekeeper
from taskmesh_gateway.clients import BrokerConnection, ServiceClients, create_redis
from taskmesh_gateway.health import router as health_router
from taskmesh_gateway.idempotency import (
    IdempotencyMiddleware,
    IdempotencyStore,
    declare_idempotency_key,
)
from taskmesh_gateway.log_redaction import redact_query_tokens
from taskmesh_gateway.login_guard import LoginGuard
from taskmesh_gateway.me_cache import MeCache
from taskmesh_gateway.middleware import (
    DOCS_PREFIX,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from taskmesh_gateway.problems import install_problem_handlers
from taskmesh_gateway.realtime import Realtime
from taskmesh_gateway.realtime.endpoint import router as realtime_router
from taskmesh_gateway.request_records import (
    RecordShipper,
    RequestRecorder,
    RequestRecordingMiddleware,
)
from taskmesh_gateway.routers import api_routers
from taskmesh_gateway.schemas.problems import problem_responses
from taskmesh_gateway.settings import GatewaySettings
from taskmesh_gateway.task_list_cache import TaskListCache
from taskmesh_gateway.tracing import configure_gateway_tracing

OPENAPI_URL = "/api/v1/openapi.json"
DESCRIPTION = """\
Task management over HTTP: accounts and sessions, profiles, tasks with attachments,
notifications and analytics. Authenticate with `Authorization: Bearer <access_token>`
(the Authorize button uses the OAuth2 password flow at `/api/v1/auth/token`).

Every response carries `X-Request-ID`; every error is an RFC 9457
`application/problem+json` document with that `request_id`.
"""

CORS_ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "X-Request-ID",
    "X-Requested-With",
]
CORS_EXPOSED_HEADERS = [
    "X-Request-ID",
    "ETag",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-Cache",
    "Idempotent-Replayed",
]


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the gateway application; its lifespan opens and closes the outbound connections."""
    app = FastAPI(
        title="taskmesh API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
        # FastAPI's own OpenTelemetry request spans would be a second server span per request
        # (and record query strings); RequestContextMiddleware traces (taskmesh_gateway.tracing).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    # /api/v1/ws takes a token in its query string, which uvicorn logs with the request line.
    redact_query_tokens()
    # Process-wide (the first app built configures it): every request gets a server span.
    configure_gateway_tracing(settings)

    install_problem_handlers(app)
    app.include_router(health_router)
    for router in api_routers:
        # Every API route is admitted: rate limited, and unavailable while Redis is down.
        app.include_router(router, responses=problem_responses(429, 503))
    # The WebSocket admits its handshakes itself (HTTP admission sees no websocket scope).
    app.include_router(realtime_router)
    _add_docs(app)
    _document_middleware_headers(app)

    # Added innermost first: a request meets the proxy headers, the security headers, its
    # context, CORS, admission (so preflights are never charged, and 429s carry CORS), then
    # idempotency (which scopes keys to the caller that admission found).
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(AdmissionMiddleware, exempt={OPENAPI_URL})
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    if settings.request_recording_enabled:
        # Inside the request context (its request id), outside admission (its caller).
        app.state.request_recorder = RequestRecorder(
            capacity=settings.request_records_buffer, batch_size=settings.request_records_batch
        )
        app.add_middleware(RequestRecordingMiddleware, recorder=app.state.request_recorder)
    app.add_middleware(RequestContextMiddleware, instance=settings.instance_name)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.trusted_tls)
    # The client address (rate limits) comes from X-Forwarded-For only when the peer is a
    # trusted proxy (FORWARDED_ALLOW_IPS); done here rather than by uvicorn's option so that
    # the application behaves the same under any server.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: GatewaySettings = app.state.settings
    app.state.clients = ServiceClients.connect(settings)
    app.state.redis = create_redis(settings)
    verifier = TokenVerifier(
        GrpcJwksProvider(app.state.clients.auth),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_s=settings.jwt_leeway_s,
    )
    app.state.gatekeeper = Gatekeeper(
        verifier,
        app.state.redis,
        user_limit_per_min=settings.rate_limit_user_per_min,
        anonymous_limit_per_min=settings.rate_limit_anon_per_min,
    )
    app.state.login_guard = LoginGuard(
        app.state.redis,
        max_failures=settings.login_max_failures,
        window_s=settings.login_failure_window_s,
    )
    app.state.me_cache = MeCache(app.state.redis)
    app.state.task_list_cache = TaskListCache(app.state.redis)
    app.state.idempotency = IdempotencyStore(app.state.redis)
    app.state.broker = BrokerConnection(
        settings.amqp_url.get_secret_value(),
        connection_name=f"gateway {settings.instance_name}",
        connect_timeout_s=settings.readiness_timeout_s,
    )
    app.state.broker.start()
    app.state.realtime = Realtime(settings, app.state.gatekeeper, app.state.broker.connection)
    app.state.realtime.start()
    app.state.request_shipper = None
    if settings.request_recording_enabled:
        app.state.request_shipper = RecordShipper(
            app.state.request_recorder,
            app.state.broker.connection,
            settings.event_topology,
            instance=settings.instance_name,
            flush_interval_s=settings.request_records_flush_s,
        )
        app.state.request_shipper.start()
    try:
        yield
    finally:
        await app.state.realtime.stop()
        if app.state.request_shipper is not None:
            await app.state.request_shipper.stop()
        await app.state.broker.close()
        await app.state.redis.aclose()
        await app.state.clients.close()
        # The last requests' spans leave now, not whenever the batch would have gone.
        flush_spans()


def _document_middleware_headers(app: FastAPI) -> None:
    """Complete the OpenAPI document with what middleware reads (`Idempotency-Key`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            declare_idempotency_key(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_docs(app: FastAPI) -> None:
    """Serve Swagger UI from the gateway itself, so its page needs no CDN and no inline script."""
    assets = f"{DOCS_PREFIX}/assets"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{app.title} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="stylesheet" href="{assets}/index.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{DOCS_PREFIX}/swagger-initializer.js"></script>
</body>
</html>
"""
    config = {
        "url": app.openapi_url,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": True,
        "displayRequestDuration": True,
        "validatorUrl": None,
    }
    initializer = f"""window.addEventListener("load", function () {{
  var config = {json.dumps(config)};
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  config.layout = "BaseLayout";
  window.ui = SwaggerUIBundle(config);
}});
"""

    @app.get(DOCS_PREFIX, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(f"{DOCS_PREFIX}/swagger-initializer.js", include_in_schema=False)
    async def swagger_initializer() -> Response:
        return Response(initializer, media_type="text/javascript")

    app.mount(assets, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui-assets")
