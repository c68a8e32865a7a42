"""`GET /api/v1/ws`: a WebSocket that pushes the caller's task changes and notifications.

The handshake is admitted exactly as an HTTP request is (`Gatekeeper.admit`: the token's
signature and claims, its revocation, one charge to the rate limit) and refused with an HTTP
problem before the upgrade. Once open, the socket only sends; what the client sends is read
and discarded (browsers cannot send protocol pings, so clients may send their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from prometheus_client import Counter
from starlette.types import Scope
from taskmesh_chassis.identity import bind_caller

from taskmesh_gateway.admission import ADMISSION_UNAVAILABLE, UNKNOWN_CLIENT, Gate
from taskmesh_gateway.dependencies import authentication_challenge
from taskmesh_gateway.problems import RETRY_AFTER_S, problem_response
from taskmesh_gateway.realtime.hub import (
    WEBSOCKET_DELIVERY_SECONDS,
    WEBSOCKET_MESSAGES_SENT,
    Hub,
    Subscriber,
)

log = structlog.get_logger(__name__)

PATH: Final = "/api/v1/ws"
QUERY_TOKEN: Final = "access_token"  # noqa: S105 - a parameter name, not a secret
BEARER_SUBPROTOCOL: Final = "bearer"
CLOSE_TIMEOUT_S: Final = 2.0
"""How long a close frame may wait for a client that does not read (a slow client's)."""
DENIAL_EXTENSION: Final = "websocket.http.response"

WEBSOCKET_REFUSED = Counter(
    "taskmesh_websocket_refused_total",
    "WebSocket handshakes refused, by the HTTP status answered.",
    ["status"],
)

router = APIRouter()


@dataclass(frozen=True, slots=True)
class PresentedToken:
    """The access token a handshake carries, and how."""

    token: str | None
    subprotocol: str | None
    """`bearer` when the token came in `Sec-WebSocket-Protocol` (the accepted subprotocol)."""
    problem: str | None = None
    """Why the handshake is malformed (400), else None."""


def take_token(scope: Scope) -> PresentedToken:
    """Find the handshake's token; remove `access_token` from the scope's query string.

    The server logs the handshake's path and query from this very scope (uvicorn's
    `"WebSocket /api/v1/ws?..." [accepted]` line), which therefore shows no token; the raw
    request line uvicorn logs at DEBUG before the app runs is redacted by `log_redaction`.
    """
    kept: list[bytes] = []
    from_query: list[str] = []
    for part in scope.get("query_string", b"").split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == QUERY_TOKEN:
            from_query.append(unquote_plus(value.decode("latin-1")))
        elif part:
            kept.append(part)
    scope["query_string"] = b"&".join(kept)

    subprotocols: list[str] = list(scope.get("subprotocols", ()))
    from_header: str | None = None
    if BEARER_SUBPROTOCOL in subprotocols:
        position = subprotocols.index(BEARER_SUBPROTOCOL)
        following = subprotocols[position + 1 : position + 2]
        from_header = following[0] if following else ""
    if len(from_query) > 1:
        return PresentedToken(None, None, f"{QUERY_TOKEN} is given more than once")
    if from_query and from_header is not None:
        return PresentedToken(
            None, None, f"give the token in {QUERY_TOKEN} or in Sec-WebSocket-Protocol, not both"
        )
    if from_header is not None:
        return PresentedToken(from_header or None, BEARER_SUBPROTOCOL)
    return PresentedToken(from_query[0] if from_query else None, None)


@router.websocket(PATH)
async def push_changes(websocket: WebSocket) -> None:
    """Admit the handshake, then push the caller's changes until either side closes."""
    presented = take_token(websocket.scope)
    gate: Gate = websocket.app.state.gatekeeper
    client_ip = websocket.client.host if websocket.client else UNKNOWN_CLIENT
    authorization = f"Bearer {presented.token}" if presented.token else None
    try:
        admission = await gate.admit(authorization, client_ip)
    except ADMISSION_UNAVAILABLE as error:
        log.warning("admission.unavailable", error_type=type(error).__name__)
        await _refuse(websocket, 503, headers={"Retry-After": str(RETRY_AFTER_S)})
        return
    quota_headers = admission.quota.headers()
    quota = {key.decode(): value.decode() for key, value in quota_headers}
    if not admission.quota.allowed:
        log.info("ratelimit.exceeded", policy=admission.quota.policy.name)
        retry = {"Retry-After": str(admission.quota.retry_after_s)}
        await _refuse(websocket, 429, headers=quota | retry)
        return
    if presented.problem is not None:
        await _refuse(websocket, 400, detail=f"{presented.problem}.", headers=quota)
        return
    if admission.caller is None:
        detail, challenge = authentication_challenge(admission)
        await _refuse(
            websocket, 401, detail=detail, headers=quota | {"WWW-Authenticate": challenge}
        )
        return

    bind_caller(admission.caller)
    hub: Hub = websocket.app.state.realtime.hub
    # Attached before the upgrade: no change made from now on is missed.
    subscriber = hub.attach(admission.caller)
    try:
        try:
            await websocket.accept(subprotocol=presented.subprotocol, headers=quota_headers)
        except WebSocketDisconnect:
            return
        opened = time.monotonic()
        log.info("websocket.opened", via="subprotocol" if presented.subprotocol else "query")
        closed_by = await _serve(websocket, subscriber)
    finally:
        hub.detach(subscriber)
    log.info(
        "websocket.closed",
        closed_by=closed_by,
        duration_s=round(time.monotonic() - opened, 3),
    )


async def _refuse(
    websocket: WebSocket,
    status: int,
    *,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer the handshake with an HTTP problem; 1008 where the server cannot (HTTP 403)."""
    WEBSOCKET_REFUSED.labels(str(status)).inc()
    log.info("websocket.refused", status=status)
    if DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        problem = problem_response(websocket.scope, status, detail=detail, headers=headers)
        await websocket.send_denial_response(problem)
    else:
        await websocket.close(code=1008, reason=f"refused: HTTP {status}")


async def _serve(websocket: WebSocket, subscriber: Subscriber) -> str:
    """Send the subscriber's queue until the client leaves or the hub closes the socket."""
    sender = asyncio.create_task(_send_queued(websocket, subscriber), name="websocket-send")
    receiver = asyncio.create_task(_discard_incoming(websocket), name="websocket-receive")
    ends: set[asyncio.Future[Any]] = {sender, receiver, subscriber.closing}
    try:
        done, _ = await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sender.cancel()
        receiver.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)
    for task in (sender, receiver):
        if task in done:
            task.result()  # a bug surfaces here; a disconnect just ended the task
            return "client"
    closing = subscriber.closing.result()
    with contextlib.suppress(WebSocketDisconnect, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code=closing.code, reason=closing.reason)
    return "gateway"


async def _send_queued(websocket: WebSocket, subscriber: Subscriber) -> None:
    while True:
        push = await subscriber.queue.get()
        try:
            await websocket.send_text(push.text)
        except WebSocketDisconnect:
            return
        WEBSOCKET_MESSAGES_SENT.labels(push.event_type).inc()
        WEBSOCKET_DELIVERY_SECONDS.observe(max(time.time() - push.event_time, 0.0))


async def _discard_incoming(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
