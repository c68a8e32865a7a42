"""A gRPC service's life: settings, logging, tracing, its database, serving, shutting down."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog
from pydantic import ValidationError
from pydantic_settings import SettingsError
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc

from taskmesh_chassis.grpc_client import create_channel
from taskmesh_chassis.grpc_server import Hook, ServicerRegistration, serve
from taskmesh_chassis.identity import GrpcJwksProvider, JwksProvider, TokenVerifier
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import Document, IndexPlan, create_mongo_client, ensure_indexes
from taskmesh_chassis.settings import GrpcServiceSettings
from taskmesh_chassis.tracing import configure_tracing, default_instance_id, shutdown_tracing

log = structlog.get_logger(__name__)

SettingsT = TypeVar("SettingsT", bound=GrpcServiceSettings)

AUTH_SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
JWKS_FETCH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServiceParts:
    """What a service's composition root hands to the chassis to serve.

    Start-up hooks run before the port opens; shutdown hooks after in-flight RPCs finished.
    Without a `jwks_provider`, callers' tokens are verified against keys fetched from the
    auth service at `AUTH_GRPC_TARGET` (the auth service passes its own keys).
    """

    servicers: Sequence[ServicerRegistration]
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    jwks_provider: JwksProvider | None = None


Composer = Callable[[SettingsT, AsyncDatabase[Document]], Awaitable[ServiceParts]]
"""A service's composition root: builds its adapters and servicers on its own database."""


@dataclass(frozen=True)
class GrpcService(Generic[SettingsT]):
    """What a service is made of; its `main.py` declares one with its composition root.

    Every RPC's access token is verified (`taskmesh_chassis.identity`) before it is handled.
    """

    settings_cls: type[SettingsT]
    compose: Composer[SettingsT]
    indexes: IndexPlan = field(default_factory=dict)

    def run(self) -> None:
        """Run as a process: read settings, configure logging, serve until SIGTERM/SIGINT.

        The spans still waiting to be exported are flushed once serving has stopped.
        """
        settings = load_settings(self.settings_cls)
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        try:
            asyncio.run(self.serve(settings))
        except Exception:
            log.exception("service.crashed")
            raise SystemExit(1) from None
        finally:
            shutdown_tracing()

    async def serve(self, settings: SettingsT, *, stop: asyncio.Event | None = None) -> None:
        """Set up tracing, open the database, ensure indexes, compose, serve until a signal.

        Given `stop`, it serves until that is set instead.
        """
        configure_tracing(
            settings.service_name,
            instance=default_instance_id(settings.grpc_port),
            settings=settings,
        )
        mongo = create_mongo_client(
            settings.mongodb_url.get_secret_value(), appname=f"taskmesh-{settings.service_name}"
        )
        database = mongo[settings.mongodb_database]
        auth_channel = None
        try:
            await ensure_indexes(database, self.indexes)
            parts = await self.compose(settings, database)
            if parts.jwks_provider is not None:
                provider = parts.jwks_provider
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
            await serve(
                settings,
                parts.servicers,
                on_startup=parts.on_startup,
                on_shutdown=parts.on_shutdown,
                stop=stop,
                verifier=verifier,
            )
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
