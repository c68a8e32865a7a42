"""Composition root of the tasks service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis
from taskmesh.tasks.v1 import tasks_pb2_grpc
from taskmesh_chassis.events import BackgroundConsumer, BackgroundRelay, Outbox
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.identity import JwksProvider
from taskmesh_chassis.mongo import Document, ensure_indexes
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_tasks.directory import AuthUserDirectory, create_auth_channel
from taskmesh_tasks.events import EVENT_SOURCE, USER_DELETED
from taskmesh_tasks.grpc_api import SERVICE_NAME, TasksServicer
from taskmesh_tasks.list_cache import RedisTaskListInvalidator
from taskmesh_tasks.purge import UserPurger
from taskmesh_tasks.repository import (
    INDEXES,
    GridFsAttachmentStore,
    MongoPurgeJobs,
    MongoTaskStore,
)
from taskmesh_tasks.service import TasksService
from taskmesh_tasks.settings import TasksSettings


def create_redis(settings: TasksSettings) -> Redis:
    """The process's Redis client (a connection pool that connects on first use)."""
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )


def tasks_service(jwks_provider: JwksProvider | None = None) -> GrpcService[TasksSettings]:
    """The tasks service; callers' tokens are verified with keys from auth unless given some."""

    async def compose(settings: TasksSettings, database: AsyncDatabase[Document]) -> ServiceParts:
        """Wire the use cases to MongoDB, GridFS, auth and Redis; events in the background.

        The relay publishes the outbox; the consumer records a purge job per `user.deleted`,
        which the purger carries out.
        """
        outbox = Outbox(database, source=EVENT_SOURCE)
        await ensure_indexes(database, outbox.indexes())
        auth_channel = create_auth_channel(
            settings.auth_grpc_target, settings.assignee_check_timeout_s
        )
        store = MongoTaskStore(database, outbox)
        attachments = GridFsAttachmentStore(database)
        service = TasksService(
            store,
            attachments,
            AuthUserDirectory.over(auth_channel, timeout_s=settings.assignee_check_timeout_s),
            max_upload_bytes=settings.max_upload_bytes,
        )
        redis = create_redis(settings)
        purger = UserPurger(
            store,
            attachments,
            MongoPurgeJobs(database),
            RedisTaskListInvalidator(redis),
            batch_size=settings.user_purge_batch,
            sweep_interval_s=settings.user_purge_sweep_s,
        )
        amqp_url = settings.amqp_url.get_secret_value()
        relay = BackgroundRelay(
            outbox,
            amqp_url,
            connection_name=f"taskmesh-tasks-{os.getpid()}",
            topology=settings.event_topology,
        )
        consumer = BackgroundConsumer(
            service="tasks",
            database=database,
            handlers={USER_DELETED: purger.record_purge},
            settings=settings,
            amqp_url=amqp_url,
            connection_name=f"taskmesh-tasks-consumer-{os.getpid()}",
        )
        add_servicer = tasks_pb2_grpc.add_TasksServiceServicer_to_server
        return ServiceParts(
            [ServicerRegistration(add_servicer, TasksServicer(service), SERVICE_NAME)],
            on_startup=[purger.start, relay.start, consumer.start],
            # Run in reverse: no more events, then the purge's batch in flight, then the rest.
            on_shutdown=[auth_channel.close, redis.aclose, relay.stop, purger.stop, consumer.stop],
            jwks_provider=jwks_provider,
        )

    return GrpcService(TasksSettings, compose, indexes=INDEXES)


SERVICE = tasks_service()


def run() -> None:
    """Start the tasks service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
