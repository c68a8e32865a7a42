"""Composition root of the auth service: builds its parts and hands them to the chassis."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.auth.v1 import auth_pb2_grpc
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService

from taskmesh_auth.grpc_api import SERVICE_NAME, AuthServicer
from taskmesh_auth.repository import INDEXES
from taskmesh_auth.settings import AuthSettings


def build_servicers(
    settings: AuthSettings, database: AsyncDatabase[Document]
) -> list[ServicerRegistration]:
    """Wire the auth servicer to its adapters."""
    add_servicer = auth_pb2_grpc.add_AuthServiceServicer_to_server
    return [ServicerRegistration(add_servicer, AuthServicer(), SERVICE_NAME)]


SERVICE = GrpcService(AuthSettings, build_servicers, indexes=INDEXES)


def run() -> None:
    """Start the auth service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
