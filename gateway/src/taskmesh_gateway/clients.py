"""The gateway's outbound connections: gRPC stubs of every service, Redis and RabbitMQ.

Each is built once in the application's lifespan and shared by every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aio_pika
import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor
from redis.asyncio import BlockingConnectionPool, Redis
from taskmesh.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_chassis.grpc_client import create_channel
from yarl import URL

from taskmesh_gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

READ_METHOD_PREFIXES = ("Get", "List", "Lookup", "Download")
"""RPCs whose names start like this only read, so a retry on UNAVAILABLE is safe."""

SERVICE_DESCRIPTORS: Mapping[str, ServiceDescriptor] = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    "users": users_pb2.DESCRIPTOR.services_by_name["UsersService"],
    "tasks": tasks_pb2.DESCRIPTOR.services_by_name["TasksService"],
    "notifications": notifications_pb2.DESCRIPTOR.services_by_name["NotificationsService"],
    "analytics": analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
}
"""Each service the gateway calls, by the name used in settings, logs and readiness checks."""


def idempotent_methods(service: ServiceDescriptor) -> list[str]:
    """The names of the service's read-only RPCs, derived from the contract rather than listed."""
    return [
        method.name for method in service.methods if method.name.startswith(READ_METHOD_PREFIXES)
    ]


@dataclass(frozen=True, slots=True)
class ServiceClients:
    """A stub per service over one long-lived channel each."""

    auth: auth_pb2_grpc.AuthServiceStub
    users: users_pb2_grpc.UsersServiceStub
    tasks: tasks_pb2_grpc.TasksServiceStub
    notifications: notifications_pb2_grpc.NotificationsServiceStub
    analytics: analytics_pb2_grpc.AnalyticsServiceStub
    channels: Mapping[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: GatewaySettings) -> ServiceClients:
        """Open one channel per service (lazily connecting) and build the stubs on them."""
        targets = settings.grpc_targets()
        channels = {
            name: create_channel(
                targets[name],
                service_full_name=service.full_name,
                idempotent_methods=idempotent_methods(service),
                default_timeout_s=settings.grpc_deadline_s,
            )
            for name, service in SERVICE_DESCRIPTORS.items()
        }
        return cls(
            auth=auth_pb2_grpc.AuthServiceStub(channels["auth"]),
            users=users_pb2_grpc.UsersServiceStub(channels["users"]),
            tasks=tasks_pb2_grpc.TasksServiceStub(channels["tasks"]),
            notifications=notifications_pb2_grpc.NotificationsServiceStub(
                channels["notifications"]
            ),
            analytics=analytics_pb2_grpc.AnalyticsServiceStub(channels["analytics"]),
            channels=channels,
        )

    async def close(self, grace_s: float | None = None) -> None:
        """Close every channel, letting calls in flight finish within `grace_s`."""
        await asyncio.gather(*(channel.close(grace_s) for channel in self.channels.values()))


def create_redis(settings: GatewaySettings) -> Redis:
    """A Redis client (a connection pool, connecting on first use) with bounded timeouts.

    The pool blocks: a request that finds every connection busy waits (up to
    `REDIS_TIMEOUT_S`) for one, where redis-py's default pool would fail it at once.
    """
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


class BrokerConnection:
    """One robust RabbitMQ connection, opened in the background so start-up never waits for it.

    While the broker is down the connection keeps retrying and readiness reports it; once
    up, aio-pika restores it (and its channels) after any drop.
    """

    RECONNECT_INTERVAL_S = 2.0

    def __init__(self, url: str, *, connection_name: str, connect_timeout_s: float) -> None:
        self.connection = aio_pika.RobustConnection(
            URL(url),
            fail_fast=False,
            reconnect_interval=self.RECONNECT_INTERVAL_S,
            client_properties={"connection_name": connection_name},
        )
        self._connect_timeout_s = connect_timeout_s
        self._connecting: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin connecting without waiting for the broker to answer."""
        self._connecting = asyncio.create_task(
            self.connection.connect(timeout=self._connect_timeout_s), name="amqp-connect"
        )

    @property
    def is_connected(self) -> bool:
        """Whether the connection is open right now."""
        return self.connection.connected.is_set() and not self.connection.is_closed

    async def ping(self) -> None:
        """Prove the broker answers by opening and closing a channel; raise if it does not."""
        if not self.is_connected:
            raise ConnectionError("not connected to RabbitMQ")
        channel = await self.connection.channel(publisher_confirms=False)
        await channel.close()

    async def close(self) -> None:
        """Stop reconnecting and close the connection."""
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        await self.connection.close()
