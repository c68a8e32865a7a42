"""The RFC 9457 problem document, as the OpenAPI document describes error responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from taskmesh_gateway.problems import PROBLEM_MEDIA_TYPE

_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request",
    401: "Missing, invalid, expired or revoked bearer token",
    403: "Authenticated but not allowed",
    404: "Unknown, or not visible to the caller",
    409: "Conflicts with the current state",
    412: "If-Match does not name the current version",
    413: "Body or file too large",
    415: "Unsupported content type",
    422: "Validation failed",
    429: "Rate limited; retry after Retry-After seconds",
    501: "Not implemented yet",
    503: "A dependency is down; retry after Retry-After seconds",
    504: "A dependency timed out",
}


class ValidationIssue(BaseModel):
    """One reason a request failed validation."""

    loc: list[str | int] = Field(description="Where: e.g. ['body', 'title'] or ['query', 'limit']")
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(default="about:blank", description="URI identifying the problem type")
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(description="The HTTP status code")
    detail: str | None = Field(default=None, description="What went wrong in this occurrence")
    instance: str | None = Field(default=None, description="The request path")
    request_id: str | None = Field(default=None, description="The X-Request-ID of the request")
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Validation failures (422 only)"
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting the given error statuses as problems."""
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
