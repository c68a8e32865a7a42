"""A gRPC service's life: settings, logging, its MongoDB database, serving, shutting down."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog
from pydantic import ValidationError
from pydantic_settings import SettingsError
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc

from taskmesh_chassis.grpc_client import create_channel
from taskmesh_chassis.grpc_server import ServicerRegistration, serve
from taskmesh_chassis.identity import GrpcJwksProvider, JwksProvider, TokenVerifier
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import Document, IndexPlan, create_mongo_client, ensure_indexes
from taskmesh_chassis.settings import GrpcServiceSettings

log = structlog.get_logger(__name__)

SettingsT = TypeVar("SettingsT", bound=GrpcServiceSettings)

AUTH_SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
JWKS_FETCH_TIMEOUT_S = 2.0

JwksProviderFactory = Callable[[SettingsT, AsyncDatabase[Document]], JwksProvider]
"""Builds the key source of the service's token verifier (the auth service uses its own keys)."""


@dataclass(frozen=True)
class GrpcService(Generic[SettingsT]):
    """What a service is made of; its `main.py` declares one and wires its servicers.

    Every RPC's access token is verified (`taskmesh_chassis.identity`) against the keys of
    `jwks_provider`, by default fetched from the auth service at `AUTH_GRPC_TARGET`.
    """

    settings_cls: type[SettingsT]
    build_servicers: Callable[[SettingsT, AsyncDatabase[Document]], Sequence[ServicerRegistration]]
    indexes: IndexPlan = field(default_factory=dict)
    jwks_provider: JwksProviderFactory[SettingsT] | None = None

    def run(self) -> None:
        """Run as a process: read settings, configure logging, serve until SIGTERM/SIGINT."""
        settings = load_settings(self.settings_cls)
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        try:
            asyncio.run(self.serve(settings))
        except Exception:
            log.exception("service.crashed")
            raise SystemExit(1) from None

    async def serve(self, settings: SettingsT, *, stop: asyncio.Event | None = None) -> None:
        """Open the database, ensure its indexes, serve gRPC until a signal or `stop`."""
        mongo = create_mongo_client(
            settings.mongodb_url.get_secret_value(), appname=f"taskmesh-{settings.service_name}"
        )
        database = mongo[settings.mongodb_database]
        auth_channel = None
        try:
            if self.jwks_provider is not None:
                provider = self.jwks_provider(settings, database)
            else:
                # Lazily connecting: the service starts (and serves anonymous RPCs) without auth.
                auth_channel = create_channel(
                    settings.auth_grpc_target,
                    service_full_name=AUTH_SERVICE_NAME,
                    idempotent_methods=["GetJwks"],
                    default_timeout_s=JWKS_FETCH_TIMEOUT_S,
                )
                provider = GrpcJwksProvider(auth_pb2_grpc.AuthServiceStub(auth_channel))
            verifier = TokenVerifier(
                provider,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                leeway_s=settings.jwt_leeway_s,
            )
            await ensure_indexes(database, self.indexes)
            servicers = self.build_servicers(settings, database)
            await serve(settings, servicers, stop=stop, verifier=verifier)
        finally:
            if auth_channel is not None:
                await auth_channel.close()
            await mongo.close()


def load_settings(settings_cls: type[SettingsT]) -> SettingsT:
    """Build the settings from the environment, or exit with a message naming what is wrong.

    The message lists variables and reasons only, never the values, which may be secrets.
    """
    try:
        return settings_cls()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']).upper() or 'settings'}: {item['msg']}"
            for item in error.errors(include_input=False)
        )
        sys.stderr.write(f"invalid configuration: {problems}\n")
    except SettingsError as error:
        sys.stderr.write(f"invalid configuration: {error}\n")
    raise SystemExit(2)
