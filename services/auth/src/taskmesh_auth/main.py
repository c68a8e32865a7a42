"""Composition root of the auth service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis
from taskmesh.auth.v1 import auth_pb2_grpc
from taskmesh_chassis.events import BackgroundRelay, Outbox
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.mongo import Document, ensure_indexes
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_auth.events import EVENT_SOURCE
from taskmesh_auth.grpc_api import SERVICE_NAME, AuthServicer
from taskmesh_auth.passwords import Argon2PasswordHasher
from taskmesh_auth.profiles import ProfileCreator, UsersProfileCreator, create_users_channel
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
    profiles: ProfileCreator,
) -> tuple[AuthService, MongoAuthStore]:
    """Wire the use cases to MongoDB, Redis, argon2, the signing keys and the users service."""
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
        profiles,
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


async def compose(settings: AuthSettings, database: AsyncDatabase[Document]) -> ServiceParts:
    """Load the keys, wire the use cases, ensure the admin; relay events in the background.

    Auth's own signing keys also verify its callers, with no round trip to itself. The
    channel to the users service connects lazily: auth starts and registers without it.
    """
    keys = load_key_store(settings)
    log.info("auth.signing_key_loaded", kid=keys.signing_kid, published=len(keys.jwks()))
    redis = create_redis(settings)
    outbox = Outbox(database, source=EVENT_SOURCE)
    await ensure_indexes(database, outbox.indexes())
    users_channel = create_users_channel(
        settings.users_grpc_target, settings.profile_create_timeout_s
    )
    profiles = UsersProfileCreator.over(users_channel, timeout_s=settings.profile_create_timeout_s)
    service, store = build_auth_service(settings, database, redis, keys, outbox, profiles)
    await store.prepare()
    await service.start()
    await ensure_bootstrap_admin(settings, service)
    relay = BackgroundRelay(
        outbox,
        settings.amqp_url.get_secret_value(),
        connection_name=f"taskmesh-auth-{os.getpid()}",
        topology=settings.event_topology,
    )
    add_servicer = auth_pb2_grpc.add_AuthServiceServicer_to_server
    return ServiceParts(
        [ServicerRegistration(add_servicer, AuthServicer(service), SERVICE_NAME)],
        on_startup=[relay.start],
        on_shutdown=[users_channel.close, redis.aclose, relay.stop, service.stop],
        jwks_provider=StaticJwksProvider(keys.public_keys()),
    )


SERVICE = GrpcService(AuthSettings, compose, indexes=INDEXES)


def run() -> None:
    """Start the auth service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
