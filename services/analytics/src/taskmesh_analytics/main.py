"""Composition root of the analytics service: builds its parts and hands them to the chassis."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.analytics.v1 import analytics_pb2_grpc
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_analytics.grpc_api import SERVICE_NAME, AnalyticsServicer
from taskmesh_analytics.settings import AnalyticsSettings


async def compose(settings: AnalyticsSettings, database: AsyncDatabase[Document]) -> ServiceParts:
    """Wire the analytics servicer to its adapters."""
    add_servicer = analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server
    return ServiceParts([ServicerRegistration(add_servicer, AnalyticsServicer(), SERVICE_NAME)])


SERVICE = GrpcService(AnalyticsSettings, compose)


def run() -> None:
    """Start the analytics service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
