"""Composition root of the tasks service: builds its parts and hands them to the chassis."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.tasks.v1 import tasks_pb2_grpc
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_tasks.grpc_api import SERVICE_NAME, TasksServicer
from taskmesh_tasks.repository import INDEXES
from taskmesh_tasks.settings import TasksSettings


async def compose(settings: TasksSettings, database: AsyncDatabase[Document]) -> ServiceParts:
    """Wire the tasks servicer to its adapters."""
    add_servicer = tasks_pb2_grpc.add_TasksServiceServicer_to_server
    return ServiceParts([ServicerRegistration(add_servicer, TasksServicer(), SERVICE_NAME)])


SERVICE = GrpcService(TasksSettings, compose, indexes=INDEXES)


def run() -> None:
    """Start the tasks service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
