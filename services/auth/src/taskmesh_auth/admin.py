"""`python -m taskmesh_auth.admin --email E`: create an admin account, or promote an existing one.

Reads the same configuration as the service (MONGODB_URL, REDIS_URL, ...). A new account's
password comes from TASKMESH_ADMIN_PASSWORD, else from a prompt; promoting an existing
account leaves its password alone. The `user.*` events it records are published by the
running auth service's relay.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from taskmesh_chassis.errors import DomainError, InvalidArgument
from taskmesh_chassis.events import Outbox
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import create_mongo_client, ensure_indexes
from taskmesh_chassis.service import load_settings

from taskmesh_auth.events import EVENT_SOURCE
from taskmesh_auth.main import build_auth_service, create_redis
from taskmesh_auth.profiles import UsersProfileCreator, create_users_channel
from taskmesh_auth.repository import INDEXES
from taskmesh_auth.service import AdminOutcome, PasswordRequired
from taskmesh_auth.settings import AuthSettings
from taskmesh_auth.tokens import load_key_store

PASSWORD_VARIABLE = "TASKMESH_ADMIN_PASSWORD"  # noqa: S105 - the variable's name

PasswordPrompt = Callable[[], str]

_MESSAGES = {
    AdminOutcome.CREATED: "created admin account {email}",
    AdminOutcome.PROMOTED: "promoted {email} to admin",
    AdminOutcome.UNCHANGED: "{email} is already an active admin",
    AdminOutcome.REFUSED: "{email} was not promoted",
}


def prompt_for_password() -> str:
    """Ask twice on the terminal; the two answers must agree."""
    first = getpass.getpass("password for the new admin account: ")
    if getpass.getpass("repeat it: ") != first:
        raise ValueError("the passwords differ")
    return first


async def ensure_admin_account(
    settings: AuthSettings, email: str, password: str | None, prompt: PasswordPrompt
) -> AdminOutcome:
    """Create or promote the admin `email`; prompt for a password only if creating."""
    mongo = create_mongo_client(settings.mongodb_url.get_secret_value(), appname="taskmesh-admin")
    database = mongo[settings.mongodb_database]
    redis = create_redis(settings)
    outbox = Outbox(database, source=EVENT_SOURCE)
    users_channel = create_users_channel(
        settings.users_grpc_target, settings.profile_create_timeout_s
    )
    profiles = UsersProfileCreator.over(users_channel, timeout_s=settings.profile_create_timeout_s)
    try:
        await ensure_indexes(database, {**INDEXES, **outbox.indexes()})
        service, store = build_auth_service(
            settings, database, redis, load_key_store(settings), outbox, profiles
        )
        await store.prepare()
        try:
            return await service.ensure_admin(email, password, require_password_match=False)
        except PasswordRequired:
            return await service.ensure_admin(email, prompt(), require_password_match=False)
    finally:
        await users_channel.close()
        await redis.aclose()
        await mongo.close()


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    prompt: PasswordPrompt = prompt_for_password,
) -> int:
    """Run the command; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m taskmesh_auth.admin",
        description="Create an admin account, or promote an existing account to admin.",
    )
    parser.add_argument("--email", required=True, help="the admin's email address")
    args = parser.parse_args(argv)
    settings = load_settings(AuthSettings)
    configure_logging(settings.service_name, "WARNING", settings.log_format, stream=sys.stderr)
    password = environ.get(PASSWORD_VARIABLE) or None
    try:
        outcome = asyncio.run(ensure_admin_account(settings, args.email, password, prompt))
    except InvalidArgument as error:
        reasons = "; ".join(f"{field.loc[-1]} {field.msg}" for field in error.errors)
        sys.stderr.write(f"admin: {reasons or error.message}\n")
        return 1
    except (DomainError, ValueError) as error:
        sys.stderr.write(f"admin: {error}\n")
        return 1
    sys.stdout.write(_MESSAGES[outcome].format(email=args.email.strip().lower()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
