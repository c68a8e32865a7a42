"""Composition root of the auth service: builds its parts and hands them to the chassis.

Auth owns more than the chassis' GrpcService composes: its signing keys (which also verify
callers here, with no round trip to itself), a Redis client for revocation, the outbox relay
and the bootstrap admin. So it runs the same steps as GrpcService.serve, plus those.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import AbstractRobustConnection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis.asyncio import Redis
from taskmesh.auth.v1 import auth_pb2_grpc
from taskmesh_chassis.events import Outbox, OutboxRelay, connect_broker
from taskmesh_chassis.events.broker import BROKER_ERRORS
from taskmesh_chassis.events.relay import backoff_s
from taskmesh_chassis.grpc_server import ServicerRegistration, serve
from taskmesh_chassis.identity import StaticJwksProvider, TokenVerifier
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import Document, IndexPlan, create_mongo_client, ensure_indexes
from taskmesh_chassis.service import load_settings

from taskmesh_auth.events import EVENT_SOURCE
from taskmesh_auth.grpc_api import SERVICE_NAME, AuthServicer
from taskmesh_auth.passwords import Argon2PasswordHasher
from taskmesh_auth.repository import INDEXES, MongoAuthStore
from taskmesh_auth.revocation import RedisRevocationStore
from taskmesh_auth.service import AuthService
from taskmesh_auth.settings import AuthSettings
from taskmesh_auth.tokens import AccessTokens, KeyStore, load_key_store

log = structlog.get_logger(__name__)


def create_redis(settings: AuthSettings) -> Redis:
    """The process's Redis client (a connection pool that connects on first use)."""
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )


def build_auth_service(
    settings: AuthSettings,
    database: AsyncDatabase[Document],
    redis: Redis,
    keys: KeyStore,
    outbox: Outbox,
) -> tuple[AuthService, MongoAuthStore]:
    """Wire the use cases to MongoDB, Redis, argon2 and the signing keys."""
    store = MongoAuthStore(database, outbox)
    service = AuthService(
        store,
        Argon2PasswordHasher(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
        ),
        AccessTokens(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
        ),
        RedisRevocationStore(redis, access_token_ttl_s=settings.access_token_ttl_s),
        refresh_token_ttl_s=settings.refresh_token_ttl_s,
        reset_token_ttl_s=settings.reset_token_ttl_s,
    )
    return service, store


async def ensure_bootstrap_admin(settings: AuthSettings, service: AuthService) -> None:
    """Make BOOTSTRAP_ADMIN_EMAIL an active admin, when it and its password are configured."""
    if settings.bootstrap_admin_email is None or settings.bootstrap_admin_password is None:
        return
    outcome = await service.ensure_admin(
        settings.bootstrap_admin_email,
        settings.bootstrap_admin_password.get_secret_value(),
        require_password_match=True,
    )
    log.info("auth.bootstrap_admin_ensured", outcome=outcome.value)


@dataclass
class RelayRunner:
    """Runs the outbox relay once RabbitMQ answers, without holding up start-up for it.

    Events wait in the outbox meanwhile; the relay publishes them as soon as it starts.
    """

    settings: AuthSettings
    outbox: Outbox
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _relay: OutboxRelay | None = field(default=None, init=False)
    _broker: AbstractRobustConnection | None = field(default=None, init=False)

    async def start(self) -> None:
        """Start connecting and relaying in the background."""
        self._task = asyncio.create_task(self._connect_and_relay(), name="auth-relay-start")

    async def stop(self) -> None:
        """Stop relaying (finishing the batch in flight) and close the broker connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._relay is not None:
            await self._relay.stop()
        if self._broker is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._broker.close()

    async def _connect_and_relay(self) -> None:
        failures = 0
        while True:
            try:
                if self._broker is None:
                    self._broker = await connect_broker(
                        self.settings.amqp_url.get_secret_value(),
                        connection_name=f"taskmesh-auth-{os.getpid()}",
                    )
                relay = OutboxRelay(
                    self.outbox, self._broker, topology=self.settings.event_topology
                )
                await relay.start()
                self._relay = relay
                return
            except (*BROKER_ERRORS, PyMongoError) as error:
                failures += 1
                delay = backoff_s(failures)
                log.warning(
                    "auth.relay_start_failed",
                    error_type=type(error).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)


@dataclass(frozen=True)
class AuthProcess:
    """The auth service as a process: the chassis' GrpcService steps plus auth's own parts."""

    settings_cls: type[AuthSettings] = AuthSettings
    indexes: IndexPlan = field(default_factory=lambda: INDEXES)

    def run(self) -> None:
        """Run as a process: read settings, configure logging, serve until SIGTERM/SIGINT."""
        settings = load_settings(self.settings_cls)
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        try:
            asyncio.run(self.serve(settings))
        except Exception:
            log.exception("service.crashed")
            raise SystemExit(1) from None

    async def serve(self, settings: AuthSettings, *, stop: asyncio.Event | None = None) -> None:
        """Load the keys, open MongoDB and Redis, ensure the admin, serve until told to stop."""
        keys = load_key_store(settings)
        log.info("auth.signing_key_loaded", kid=keys.signing_kid, published=len(keys.jwks()))
        mongo = create_mongo_client(
            settings.mongodb_url.get_secret_value(), appname=f"taskmesh-{settings.service_name}"
        )
        database = mongo[settings.mongodb_database]
        redis = create_redis(settings)
        outbox = Outbox(database, source=EVENT_SOURCE)
        try:
            await ensure_indexes(database, {**self.indexes, **outbox.indexes()})
            service, store = build_auth_service(settings, database, redis, keys, outbox)
            await store.prepare()
            await service.start()
            await ensure_bootstrap_admin(settings, service)
            relay = RelayRunner(settings, outbox)
            verifier = TokenVerifier(
                StaticJwksProvider(keys.public_keys()),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                leeway_s=settings.jwt_leeway_s,
            )
            add_servicer = auth_pb2_grpc.add_AuthServiceServicer_to_server
            await serve(
                settings,
                [ServicerRegistration(add_servicer, AuthServicer(service), SERVICE_NAME)],
                on_startup=[relay.start],
                on_shutdown=[relay.stop, service.stop],
                stop=stop,
                verifier=verifier,
            )
        finally:
            await redis.aclose()
            await mongo.close()


SERVICE = AuthProcess()


def run() -> None:
    """Start the auth service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
