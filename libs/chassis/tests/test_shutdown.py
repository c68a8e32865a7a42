from __future__ import annotations

import asyncio
import os
import signal
from typing import Any, ClassVar

import grpc
from taskmesh_chassis.grpc_server import serve
from taskmesh_chassis.settings import GrpcServiceSettings, Port
from taskmesh_chassis.testing import wait_until_serving


class EchoSettings(GrpcServiceSettings):
    service_name: ClassVar[str] = "echo"
    grpc_port: Port = 0
    metrics_port: Port = 0


async def test_sigterm_lets_the_in_flight_rpc_finish_before_shutdown_hooks(
    echo_service: Any, free_port: int
) -> None:
    settings = EchoSettings(grpc_port=free_port, shutdown_grace_s=5)
    finished_when_hook_ran: list[bytes] = []

    async def close_resources() -> None:
        finished_when_hook_ran.extend(echo_service.finished)

    server = asyncio.create_task(
        serve(settings, [echo_service.registration()], on_shutdown=[close_resources])
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port}") as channel:
        await wait_until_serving(channel, server)
        in_flight = asyncio.ensure_future(channel.unary_unary("/test.v1.Echo/Slow")(b"work"))
        await echo_service.slow_started.wait()

        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert not server.done(), "the server must wait for the in-flight RPC"
        echo_service.gate.set()
        assert await in_flight == b"work"

    await asyncio.wait_for(server, timeout=5)
    assert finished_when_hook_ran == [b"work"]


async def test_new_rpcs_are_refused_once_shutdown_began(echo_service: Any, free_port: int) -> None:
    settings = EchoSettings(grpc_port=free_port, shutdown_grace_s=5)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, [echo_service.registration()], stop=stop))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port}") as channel:
        await wait_until_serving(channel, server)
        in_flight = asyncio.ensure_future(channel.unary_unary("/test.v1.Echo/Slow")(b"work"))
        await echo_service.slow_started.wait()
        stop.set()
        await asyncio.sleep(0.2)

        async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port}") as late_channel:
            late = late_channel.unary_unary("/test.v1.Echo/Unary")(b"late", timeout=1)
            try:
                await late
                refused = False
            except grpc.aio.AioRpcError:
                refused = True
        echo_service.gate.set()
        assert await in_flight == b"work"
    await server
    assert refused
