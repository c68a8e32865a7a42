"""Composition root of the analytics service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.analytics.v1 import analytics_pb2_grpc
from taskmesh_chassis.events import BackgroundConsumer
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.identity import JwksProvider
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_analytics.consumer import AnalyticsEvents
from taskmesh_analytics.grpc_api import SERVICE_NAME, AnalyticsServicer
from taskmesh_analytics.repository import INDEXES, RollupReader, RollupWriter
from taskmesh_analytics.service import AnalyticsService
from taskmesh_analytics.settings import AnalyticsSettings


def analytics_service(jwks_provider: JwksProvider | None = None) -> GrpcService[AnalyticsSettings]:
    """The analytics service; callers' tokens are verified with keys from auth unless given some."""

    async def compose(
        settings: AnalyticsSettings, database: AsyncDatabase[Document]
    ) -> ServiceParts:
        """Wire the RPCs to the rollups; consume every counted event in the background."""
        service = AnalyticsService(RollupReader(database), settings.retention)
        consumer = BackgroundConsumer(
            service="analytics",
            database=database,
            handlers=AnalyticsEvents(RollupWriter(database, settings.retention)).handlers(),
            settings=settings,
            amqp_url=settings.amqp_url.get_secret_value(),
            connection_name=f"taskmesh-analytics-{os.getpid()}",
        )
        add_servicer = analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server
        return ServiceParts(
            [ServicerRegistration(add_servicer, AnalyticsServicer(service), SERVICE_NAME)],
            on_startup=[consumer.start],
            on_shutdown=[consumer.stop],
            jwks_provider=jwks_provider,
        )

    # Collections are created by their indexes here, before any transaction writes them.
    return GrpcService(AnalyticsSettings, compose, indexes=INDEXES)


SERVICE = analytics_service()


def run() -> None:
    """Start the analytics service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
