"""Every error the gateway answers, rendered one way: an RFC 9457 `application/problem+json`.

The status codes and the gRPC-to-HTTP mapping are documented in docs/errors.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import grpc
import structlog
from aio_pika.exceptions import AMQPConnectionError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.routing import APIRoute, iter_route_contexts
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope
from taskmesh_chassis.errors import field_errors_from_metadata

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE = "about:blank"
"""Each status has one meaning in this API, so problems carry no finer type (RFC 9457 §4.2.1)."""

RETRY_AFTER_S = 5
"""What a 503 tells clients to wait before trying again."""

MAX_DETAIL_CHARS = 500

_GENERIC_DETAILS: Mapping[int, str] = {
    400: "The request is malformed.",
    401: "A valid bearer token is required.",
    403: "You are not allowed to do this.",
    404: "Nothing is here, or it is not visible to you.",
    405: "This method is not allowed here; the Allow header lists those that are.",
    409: "The request conflicts with the current state.",
    412: "The If-Match version is not the current one.",
    413: "The body is too large.",
    415: "The body's Content-Type is not one this route accepts.",
    422: "The request failed validation.",
    429: "Too many requests; retry after the Retry-After delay.",
    500: "An unexpected error occurred; quote the request_id when reporting it.",
    501: "This operation is not implemented yet.",
    503: "A dependency is unavailable; retry after the Retry-After delay.",
    504: "A dependency did not answer in time.",
}

_JSON_MEDIA_TYPES = ("application/json",)
_FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def request_id_of(scope: Scope) -> str | None:
    """The request id the request-context middleware gave this request."""
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


def problem_response(
    scope: Scope,
    status: int,
    *,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Render a problem for the request in `scope`; `extra` adds members such as `errors`."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": title,
        "status": status,
        "detail": detail or _GENERIC_DETAILS.get(status, title),
        "instance": scope.get("path"),
        "request_id": request_id_of(scope),
    }
    if extra:
        body.update(extra)
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def internal_error_response(scope: Scope, exc: BaseException) -> Response:
    """Log an unexpected exception with its traceback and answer a 500 that reveals nothing."""
    log.error("request.unhandled_exception", exc_info=exc)
    return problem_response(scope, 500)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette/FastAPI HTTP errors (unknown route, wrong method, errors raised by routes)."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail is not None and detail == _phrase(status):
        detail = None
    if status == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
    elif status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    elif status == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return problem_response(request.scope, status, detail=detail, headers=headers)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """Request validation: 400 for a body that is not JSON, 415 for the wrong type, else 422."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = next((error for error in errors if error.get("type") == "json_invalid"), None)
    if malformed is not None:
        position = malformed["loc"][-1] if len(malformed["loc"]) > 1 else None
        detail = "The body is not valid JSON" + (
            f" (at character {position})." if isinstance(position, int) else "."
        )
        return problem_response(request.scope, 400, detail=detail)
    expected = _expected_media_types(request)
    if expected and _concerns_body(errors) and not _content_type_accepted(request, expected):
        return problem_response(
            request.scope, 415, detail=f"Send the body as {' or '.join(expected)}."
        )
    issues = [{"loc": list(error["loc"]), "msg": error["msg"]} for error in errors]
    return problem_response(request.scope, 422, extra={"errors": issues})


@dataclass(frozen=True, slots=True)
class RpcErrorMapping:
    """How one gRPC status code is answered over HTTP."""

    status: int
    show_details: bool
    headers: Mapping[str, str] | None = None


_RETRY_LATER = {"Retry-After": str(RETRY_AFTER_S)}

RPC_ERROR_MAPPINGS: Mapping[grpc.StatusCode, RpcErrorMapping] = {
    grpc.StatusCode.INVALID_ARGUMENT: RpcErrorMapping(422, show_details=True),
    grpc.StatusCode.OUT_OF_RANGE: RpcErrorMapping(422, show_details=True),
    grpc.StatusCode.UNAUTHENTICATED: RpcErrorMapping(
        401, show_details=True, headers={"WWW-Authenticate": "Bearer"}
    ),
    grpc.StatusCode.PERMISSION_DENIED: RpcErrorMapping(403, show_details=True),
    grpc.StatusCode.NOT_FOUND: RpcErrorMapping(404, show_details=True),
    grpc.StatusCode.ALREADY_EXISTS: RpcErrorMapping(409, show_details=True),
    grpc.StatusCode.ABORTED: RpcErrorMapping(409, show_details=True),
    grpc.StatusCode.FAILED_PRECONDITION: RpcErrorMapping(412, show_details=True),
    grpc.StatusCode.RESOURCE_EXHAUSTED: RpcErrorMapping(413, show_details=True),
    grpc.StatusCode.UNIMPLEMENTED: RpcErrorMapping(501, show_details=False),
    grpc.StatusCode.UNAVAILABLE: RpcErrorMapping(503, show_details=False, headers=_RETRY_LATER),
    grpc.StatusCode.CANCELLED: RpcErrorMapping(503, show_details=False, headers=_RETRY_LATER),
    grpc.StatusCode.DEADLINE_EXCEEDED: RpcErrorMapping(504, show_details=False),
}
"""gRPC status → HTTP answer; any code not listed (UNKNOWN, INTERNAL, DATA_LOSS) is a 500."""

_INTERNAL = RpcErrorMapping(500, show_details=False)


async def handle_rpc_error(request: Request, exc: Exception) -> Response:
    """A service's gRPC status, answered as the HTTP problem it means."""
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    mapping = RPC_ERROR_MAPPINGS.get(code, _INTERNAL)
    if mapping.status >= 500:
        log.warning(
            "grpc.call_failed",
            grpc_code=code.name,
            grpc_details=exc.details(),
            debug=exc.debug_error_string(),
            status=mapping.status,
        )
    detail = _service_detail(exc.details()) if mapping.show_details else None
    extra = None
    if mapping.status == 422:
        extra = {"errors": _service_field_errors(exc, detail)}
    return problem_response(
        request.scope, mapping.status, detail=detail, headers=mapping.headers, extra=extra
    )


async def handle_dependency_down(request: Request, exc: Exception) -> Response:
    """Redis or RabbitMQ refused or timed out: 503 (with Retry-After) or 504, never a 500."""
    log.warning("dependency.unavailable", error_type=type(exc).__name__)
    if isinstance(exc, RedisTimeoutError):
        return problem_response(request.scope, 504)
    return problem_response(request.scope, 503, headers=_RETRY_LATER)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error the routes can raise answer as a problem document."""
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(grpc.aio.AioRpcError, handle_rpc_error)
    for dependency_error in (RedisConnectionError, RedisTimeoutError, AMQPConnectionError):
        app.add_exception_handler(dependency_error, handle_dependency_down)


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _service_detail(details: str | None) -> str | None:
    if not details:
        return None
    details = " ".join(details.split())
    return details[:MAX_DETAIL_CHARS]


def _service_field_errors(exc: grpc.aio.AioRpcError, detail: str | None) -> list[dict[str, Any]]:
    # The service names the offending fields (as paths in its request message) when it can.
    field_errors = field_errors_from_metadata(exc.trailing_metadata() or ())
    if not field_errors:
        return [{"loc": [], "msg": detail or _GENERIC_DETAILS[422]}]
    return [{"loc": list(error.loc), "msg": error.msg} for error in field_errors]


def _allowed_methods(request: Request, declared: str) -> str:
    # Starlette names only the first route whose path matched; collect every route's methods.
    methods = {method.strip() for method in declared.split(",") if method.strip()}
    path = request.scope.get("path", "")
    for route in iter_route_contexts(request.app.routes):
        path_regex = getattr(route, "path_regex", None)
        if route.methods and path_regex is not None and path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _expected_media_types(request: Request) -> tuple[str, ...]:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return ()
    if isinstance(route.body_field.field_info, Form):
        return _FORM_MEDIA_TYPES
    return _JSON_MEDIA_TYPES


def _content_type_accepted(request: Request, expected: tuple[str, ...]) -> bool:
    content_type = request.headers.get("content-type")
    if content_type is None:
        # No body at all is a validation matter (a required body is missing), not a media type one.
        return request.headers.get("content-length", "0") == "0" and (
            "transfer-encoding" not in request.headers
        )
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type in expected:
        return True
    return expected == _JSON_MEDIA_TYPES and media_type.endswith("+json")


def _concerns_body(errors: Sequence[Any]) -> bool:
    return any(tuple(error.get("loc", ()))[:1] == ("body",) for error in errors)
