"""Checks made before anything starts: dependencies reachable, ports free."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aio_pika
import pymongo
import redis.asyncio as aioredis
from pymongo.errors import PyMongoError

from taskmesh_localrun.console import shown_path
from taskmesh_localrun.plan import Plan
from taskmesh_localrun.ports import is_port_free
from taskmesh_localrun.urls import redact_url, url_password

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CHECK_TIMEOUT_S = 3.0


def _reason(exc: BaseException, url: str) -> str:
    """A short cause for the message, with any password in it scrubbed."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = url_password(url)
    if password:
        text = text.replace(password, "***")
    lowered = text.lower()
    if any(sign in lowered for sign in ("access_refused", "authentication", "auth ", "wrongpass")):
        return "login refused: check the user and password in the URL"
    if any(sign in lowered for sign in ("refused", "connect call failed", "111")):
        return "connection refused"
    return text[:160]


async def check_redis(url: str) -> str | None:
    """None when Redis answers PING at url, else the one line that says so."""
    client = aioredis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
    )
    try:
        await asyncio.wait_for(client.ping(), CHECK_TIMEOUT_S + 1)
    except Exception as exc:  # any failure means: not usable
        return (
            f"Redis is not reachable at {redact_url(url)} ({_reason(exc, url)}) — "
            "start it (redis-server --daemonize yes) or set REDIS_URL"
        )
    finally:
        await client.aclose()
    return None


async def check_rabbitmq(url: str) -> str | None:
    """None when an AMQP connection to url opens, else the one line that says so."""
    # aiormq logs its own copy of the failure; the line below says it once.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    try:
        connection = await asyncio.wait_for(
            aio_pika.connect(url, timeout=CHECK_TIMEOUT_S), CHECK_TIMEOUT_S + 1
        )
    except Exception as exc:  # any failure means: not usable
        return (
            f"RabbitMQ is not reachable at {redact_url(url)} ({_reason(exc, url)}) — "
            "start it (rabbitmq-server -detached) or set AMQP_URL"
        )
    await connection.close()
    return None


def _ping_mongodb(url: str) -> None:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=int(CHECK_TIMEOUT_S * 1000)
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


async def check_mongodb(url: str) -> str | None:
    """None when the MongoDB at url answers ping, else the one line that says so."""
    try:
        await asyncio.to_thread(_ping_mongodb, url)
    except (PyMongoError, ValueError) as exc:
        return (
            f"MongoDB is not reachable at {redact_url(url)} ({_reason(exc, url)}) — "
            "start it, or unset MONGODB_URL to use the embedded SecantusDB"
        )
    return None


def check_web_build(plan: Plan) -> str | None:
    """None when the web app this run serves is built, else the one line that says so."""
    if plan.web_dist is None or (plan.web_dist / "index.html").is_file():
        return None
    return (
        f"The web app is not built: run `make web` ({shown_path(plan.web_dist)}/index.html "
        "is missing), or run with --no-web"
    )


def check_ports(plan: Plan) -> list[str]:
    """One line per port of the plan that something else already listens on."""
    problems = []
    for spec in plan.processes:
        for role, port in spec.ports.items():
            if not is_port_free(port):
                hint = (
                    "set PUBLIC_PORT"
                    if role == "public"
                    else "stop what uses it (another make run?)"
                )
                problems.append(
                    f"Port {port} ({spec.name} {role}) is already in use on 127.0.0.1 — "
                    f"{hint}, or run with --free-ports"
                )
    return problems


async def preflight(plan: Plan, environ: Mapping[str, str]) -> list[str]:
    """Every reason the plan cannot start, one line each; empty when all is well."""
    checks = [
        check_redis(environ.get("REDIS_URL") or DEFAULT_REDIS_URL),
        check_rabbitmq(environ.get("AMQP_URL") or DEFAULT_AMQP_URL),
    ]
    if plan.mongodb_url and not plan.embedded_mongo:
        checks.append(check_mongodb(plan.mongodb_url))
    results = await asyncio.gather(*checks)
    problems = [problem for problem in [*results, check_web_build(plan)] if problem is not None]
    problems.extend(check_ports(plan))
    return problems
