"""The gRPC server every service runs: health, reflection, interceptors, graceful shutdown."""

from __future__ import annotations

import asyncio
import inspect
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any, NamedTuple

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymongo.errors import ConnectionFailure

from taskmesh_chassis.context import RequestContext, bind_request, current_request
from taskmesh_chassis.errors import DomainError
from taskmesh_chassis.grpc_client import split_method
from taskmesh_chassis.identity import TokenVerifier, identity_scope
from taskmesh_chassis.metrics import RPC_HANDLED, RPC_HANDLING_SECONDS, start_metrics_server
from taskmesh_chassis.settings import GrpcServiceSettings
from taskmesh_chassis.tracing import context_from_headers, current_traceparent, get_tracer

log = structlog.get_logger(__name__)
_tracer = get_tracer(__name__)

Hook = Callable[[], Awaitable[None]]
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

# The server must accept the keepalive pings that create_channel's clients send.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share it
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # A client keeps one HTTP/2 connection to one replica behind a Service's virtual IP;
    # closing connections after a few minutes (GOAWAY, in-flight calls finish within the
    # grace) makes clients reconnect and spreads them over replicas added since.
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
]

# The codes that are the server's fault (OpenTelemetry's gRPC conventions): a server span
# ending with one of them is an error; the others (NOT_FOUND, ...) are the caller's.
SERVER_FAULT_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# Errors that mean a dependency is down rather than a bug: the caller may retry.
_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)


class ServicerRegistration(NamedTuple):
    """A servicer and how to add it: `(add_XServiceServicer_to_server, servicer, full_name)`."""

    add_to_server: Callable[[Any, Any], None]
    servicer: object
    service_name: str


RpcScope = Callable[[Any], AbstractAsyncContextManager[None]]

_BEHAVIOUR_BY_KIND = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


def wrap_rpc_handler(handler: Any, scope: RpcScope) -> Any:
    """Return the method handler with its behaviour run inside `scope(context)`.

    Works for the four RPC kinds, keeping each behaviour's calling style: the aio server
    tells async generators (yielding responses) from coroutines (writing with
    `context.write`) by inspecting the function, so the wrapper must be of the same kind.
    """
    if handler is None:
        return None
    kind = _BEHAVIOUR_BY_KIND[(handler.request_streaming, handler.response_streaming)]
    behaviour = getattr(handler, kind)
    if inspect.isgeneratorfunction(behaviour):
        raise TypeError(f"{behaviour!r}: streaming servicer methods must be async")

    if inspect.isasyncgenfunction(behaviour):

        async def stream_responses(request: Any, context: Any) -> AsyncIterator[Any]:
            async with scope(context):
                async for response in behaviour(request, context):
                    yield response

        return handler._replace(**{kind: stream_responses})

    async def respond(request: Any, context: Any) -> Any:
        async with scope(context):
            # The generated base class answers UNIMPLEMENTED from plain functions.
            result = behaviour(request, context)
            return await result if inspect.isawaitable(result) else result

    return handler._replace(**{kind: respond})


class RequestContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Binds request id, caller identity and trace id from the metadata to the RPC's logs."""

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        """Bind the caller's request context, then look the handler up."""
        # grpc runs each RPC's interceptors and handler in one fresh contextvars.Context.
        bind_request(RequestContext.from_metadata(handler_call_details.invocation_metadata or ()))
        return await continuation(handler_call_details)


class HandlerScopeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs every RPC handler inside `scope(method, context)`, whatever the RPC's kind."""

    def __init__(self, scope: Callable[[str, Any], AbstractAsyncContextManager[None]]) -> None:
        self._scope = scope

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        """Look the handler up and wrap it in the scope."""
        method: str = handler_call_details.method
        handler = await continuation(handler_call_details)
        return wrap_rpc_handler(handler, lambda context: self._scope(method, context))


def final_code(context: Any, error: BaseException | None) -> grpc.StatusCode:
    """The status an RPC ended with, given the exception (if any) its handler raised."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


@asynccontextmanager
async def server_span_scope(method: str, context: Any) -> AsyncIterator[None]:
    """Handle the RPC in a server span, a child of the caller's `traceparent` if it sent one.

    The request is re-bound with the span's own `traceparent`, so that what it forwards and
    logs names this span. Health checks, every few seconds from every prober, get no span.
    """
    service, name = split_method(method)
    if service == HEALTH_SERVICE_NAME:
        yield
        return
    received = {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }
    with _tracer.start_as_current_span(
        f"{service}/{name}",
        context=context_from_headers(received),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        request = current_request()
        if request is not None:
            bind_request(replace(request, traceparent=current_traceparent()))
        error: BaseException | None = None
        try:
            yield
        except BaseException as raised:
            error = raised
            raise
        finally:
            code = final_code(context, error)
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_FAULT_CODES:
                span.set_status(Status(StatusCode.ERROR, code.name))


@asynccontextmanager
async def access_log_scope(method: str, context: Any) -> AsyncIterator[None]:
    """Log one line per RPC (method, code, duration_ms) and record the RPC metrics."""
    service, name = split_method(method)
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        yield
    except BaseException as raised:
        error = raised
        raise
    finally:
        code = final_code(context, error)
        elapsed = time.perf_counter() - started
        RPC_HANDLED.labels(service, name, code.name).inc()
        RPC_HANDLING_SECONDS.labels(service, name).observe(elapsed)
        # Probes check health every few seconds; their lines would drown the real traffic.
        emit = log.debug if service == HEALTH_SERVICE_NAME else log.info
        emit("rpc.handled", method=method, code=code.name, duration_ms=round(elapsed * 1000, 3))


@asynccontextmanager
async def error_scope(method: str, context: Any) -> AsyncIterator[None]:
    """Turn a DomainError into its status, any other exception into a generic INTERNAL."""
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except DomainError as error:
        await context.abort(error.status_code, error.message, error.trailing_metadata())
    except _UNAVAILABLE_ERRORS:
        log.warning("rpc.dependency_unavailable", method=method, exc_info=True)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable")
    except Exception:
        preset = context.code()
        if preset not in (None, grpc.StatusCode.OK):
            # The handler chose its status before raising (the generated UNIMPLEMENTED stubs).
            await context.abort(preset, context.details() or "")
        else:
            # The details stay in the server's log; the caller learns only that it failed.
            log.exception("rpc.unhandled_exception", method=method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def default_interceptors(verifier: TokenVerifier | None = None) -> list[grpc.aio.ServerInterceptor]:
    """The chassis interceptors, outermost first: context, span, access log, errors, identity.

    The access log scope also records the RPC metrics. The identity check (only given a token
    verifier) runs inside the error scope, so a bad token is answered UNAUTHENTICATED and
    logged like any other failure; everything runs in the RPC's span, so every log line of
    the RPC carries its trace id.
    """
    interceptors = [
        RequestContextInterceptor(),
        HandlerScopeInterceptor(server_span_scope),
        HandlerScopeInterceptor(access_log_scope),
        HandlerScopeInterceptor(error_scope),
    ]
    if verifier is not None:
        interceptors.append(HandlerScopeInterceptor(identity_scope(verifier)))
    return interceptors


class GrpcServer:
    """A grpc.aio server with the standard health service and server reflection."""

    def __init__(
        self,
        servicers: Sequence[ServicerRegistration],
        *,
        host: str,
        port: int,
        interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        """Serve `servicers`; `verifier` (ignored with explicit `interceptors`) checks callers."""
        self._servicers = [ServicerRegistration(*registration) for registration in servicers]
        self._address = f"{host}:{port}"
        self.health = health_aio.HealthServicer()
        self._server = grpc.aio.server(
            interceptors=default_interceptors(verifier) if interceptors is None else interceptors,
            options=SERVER_OPTIONS,
        )
        self.port = 0

    @property
    def service_names(self) -> list[str]:
        """The full names of the application services it serves."""
        return [registration.service_name for registration in self._servicers]

    async def start(self) -> None:
        """Bind, start serving and report SERVING for each service and for the server ("")."""
        for add_to_server, servicer, _ in self._servicers:
            add_to_server(servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            [*self.service_names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = self._server.add_insecure_port(self._address)
        await self._server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new RPCs and give in-flight ones `grace_s` to finish."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace_s)


async def serve(
    settings: GrpcServiceSettings,
    servicers: Sequence[ServicerRegistration],
    *,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    stop: asyncio.Event | None = None,
    verifier: TokenVerifier | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or until `stop` is set), then shut down gracefully.

    With a `verifier`, every RPC's `authorization` metadata is verified and its Caller bound
    (`taskmesh_chassis.identity`).

    Start-up hooks run before the port opens. Shutdown hooks run in reverse order after the
    in-flight RPCs have finished (or the grace period ran out), and also when start-up
    failed, so they must tolerate a half-started service. Given a `stop` event (tests,
    embedding), it leaves the process's signal handling alone.
    """
    loop = asyncio.get_running_loop()
    handle_signals = stop is None
    stop = stop or asyncio.Event()
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    try:
        # Unwinds in reverse: stop the server, then the metrics endpoint, then the hooks.
        async with AsyncExitStack() as cleanup:
            for hook in on_shutdown:
                cleanup.push_async_callback(hook)
            for hook in on_startup:
                await hook()
            metrics = start_metrics_server(settings.metrics_port, settings.grpc_host)
            cleanup.push_async_callback(asyncio.to_thread, metrics.stop)
            server = GrpcServer(
                servicers, host=settings.grpc_host, port=settings.grpc_port, verifier=verifier
            )
            await server.start()
            cleanup.push_async_callback(server.stop, settings.shutdown_grace_s)
            log.info(
                "service.started",
                grpc_port=server.port,
                metrics_port=metrics.port,
                services=server.service_names,
            )
            await stop.wait()
            log.info("service.stopping", grace_s=settings.shutdown_grace_s)
        log.info("service.stopped")
    finally:
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
