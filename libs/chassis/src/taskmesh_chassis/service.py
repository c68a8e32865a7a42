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

from taskmesh_chassis.grpc_server import ServicerRegistration, serve
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import Document, IndexPlan, create_mongo_client, ensure_indexes
from taskmesh_chassis.settings import GrpcServiceSettings

log = structlog.get_logger(__name__)

SettingsT = TypeVar("SettingsT", bound=GrpcServiceSettings)


@dataclass(frozen=True)
class GrpcService(Generic[SettingsT]):
    """What a service is made of; its `main.py` declares one and wires its servicers."""

    settings_cls: type[SettingsT]
    build_servicers: Callable[[SettingsT, AsyncDatabase[Document]], Sequence[ServicerRegistration]]
    indexes: IndexPlan = field(default_factory=dict)

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
        try:
            await ensure_indexes(database, self.indexes)
            await serve(settings, self.build_servicers(settings, database), stop=stop)
        finally:
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
