"""Composition root of the tasks service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.tasks.v1 import tasks_pb2_grpc
from taskmesh_chassis.events import BackgroundRelay, Outbox
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.identity import JwksProvider
from taskmesh_chassis.mongo import Document, ensure_indexes
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_tasks.directory import AuthUserDirectory, create_auth_channel
from taskmesh_tasks.events import EVENT_SOURCE
from taskmesh_tasks.grpc_api import SERVICE_NAME, TasksServicer
from taskmesh_tasks.repository import INDEXES, GridFsAttachmentStore, MongoTaskStore
from taskmesh_tasks.service import TasksService
from taskmesh_tasks.settings import TasksSettings


def tasks_service(jwks_provider: JwksProvider | None = None) -> GrpcService[TasksSettings]:
    """The tasks service; callers' tokens are verified with keys from auth unless given some."""

    async def compose(settings: TasksSettings, database: AsyncDatabase[Document]) -> ServiceParts:
        """Wire the use cases to MongoDB, GridFS and auth; relay events in the background."""
        outbox = Outbox(database, source=EVENT_SOURCE)
        await ensure_indexes(database, outbox.indexes())
        auth_channel = create_auth_channel(
            settings.auth_grpc_target, settings.assignee_check_timeout_s
        )
        service = TasksService(
            MongoTaskStore(database, outbox),
            GridFsAttachmentStore(database),
            AuthUserDirectory.over(auth_channel, timeout_s=settings.assignee_check_timeout_s),
            max_upload_bytes=settings.max_upload_bytes,
        )
        relay = BackgroundRelay(
            outbox,
            settings.amqp_url.get_secret_value(),
            connection_name=f"taskmesh-tasks-{os.getpid()}",
            topology=settings.event_topology,
        )
        add_servicer = tasks_pb2_grpc.add_TasksServiceServicer_to_server
        return ServiceParts(
            [ServicerRegistration(add_servicer, TasksServicer(service), SERVICE_NAME)],
            on_startup=[relay.start],
            on_shutdown=[auth_channel.close, relay.stop],
            jwks_provider=jwks_provider,
        )

    return GrpcService(TasksSettings, compose, indexes=INDEXES)


SERVICE = tasks_service()


def run() -> None:
    """Start the tasks service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
