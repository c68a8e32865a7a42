"""Composition root of the users service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.users.v1 import users_pb2_grpc
from taskmesh_chassis.events import BackgroundConsumer, BackgroundRelay, Outbox
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.identity import JwksProvider
from taskmesh_chassis.mongo import Document, ensure_indexes
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_users.accounts import AuthAccountDirectory, create_auth_channel
from taskmesh_users.consumer import IdentityEvents
from taskmesh_users.events import EVENT_SOURCE
from taskmesh_users.grpc_api import SERVICE_NAME, UsersServicer
from taskmesh_users.repository import (
    INDEXES,
    IdentityCopies,
    MongoProfileStore,
    ensure_collections,
)
from taskmesh_users.service import UsersService
from taskmesh_users.settings import UsersSettings


def users_service(jwks_provider: JwksProvider | None = None) -> GrpcService[UsersSettings]:
    """The users service; callers' tokens are verified with keys from auth unless given some."""

    async def compose(settings: UsersSettings, database: AsyncDatabase[Document]) -> ServiceParts:
        """Wire the use cases to MongoDB and auth; relay and consume events in the background."""
        outbox = Outbox(database, source=EVENT_SOURCE)
        await ensure_indexes(database, outbox.indexes())
        await ensure_collections(database)
        auth_channel = create_auth_channel(settings.auth_grpc_target, settings.auth_timeout_s)
        service = UsersService(
            MongoProfileStore(database, outbox),
            AuthAccountDirectory.over(auth_channel, timeout_s=settings.auth_timeout_s),
        )
        amqp_url = settings.amqp_url.get_secret_value()
        relay = BackgroundRelay(
            outbox,
            amqp_url,
            connection_name=f"taskmesh-users-relay-{os.getpid()}",
            topology=settings.event_topology,
        )
        consumer = BackgroundConsumer(
            service="users",
            database=database,
            handlers=IdentityEvents(IdentityCopies(database)).handlers(),
            settings=settings,
            amqp_url=amqp_url,
            connection_name=f"taskmesh-users-{os.getpid()}",
        )
        add_servicer = users_pb2_grpc.add_UsersServiceServicer_to_server
        return ServiceParts(
            [ServicerRegistration(add_servicer, UsersServicer(service), SERVICE_NAME)],
            on_startup=[relay.start, consumer.start],
            on_shutdown=[consumer.stop, relay.stop, auth_channel.close],
            jwks_provider=jwks_provider,
        )

    return GrpcService(UsersSettings, compose, indexes=INDEXES)


SERVICE = users_service()


def run() -> None:
    """Start the users service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
