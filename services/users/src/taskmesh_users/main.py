"""Composition root of the users service: builds its parts and hands them to the chassis."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.users.v1 import users_pb2_grpc
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_users.grpc_api import SERVICE_NAME, UsersServicer
from taskmesh_users.settings import UsersSettings


async def compose(settings: UsersSettings, database: AsyncDatabase[Document]) -> ServiceParts:
    """Wire the users servicer to its adapters."""
    add_servicer = users_pb2_grpc.add_UsersServiceServicer_to_server
    return ServiceParts([ServicerRegistration(add_servicer, UsersServicer(), SERVICE_NAME)])


SERVICE = GrpcService(UsersSettings, compose)


def run() -> None:
    """Start the users service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
