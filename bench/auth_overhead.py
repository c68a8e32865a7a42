"""The gateway's per-request cost of admission: token verification, revocation check, rate limit.

Runs the gateway's own admission code in-process against a real Redis (no HTTP, no Traefik,
no service call), with real Ed25519 tokens for many users (each stays under its limit, as real
traffic does), and prints microseconds per request for each step:

- verify, first use: full local JWT verification (header, cached key, EdDSA signature, claims)
- verify, remembered: a token verified before (the verifier's LRU), as on a client's 2nd request
- admit (caller, first use / remembered): verification + the one Redis script (revocation
  + rate limit), the whole per-request cost for an authenticated request
- admit (anonymous): the client-IP rate limit alone
- middleware: AdmissionMiddleware around an empty ASGI app, as a request meets it
- concurrent: admit (caller, remembered) with many requests in flight

Asserts nothing. Uses Redis database 14 by default (the keys expire within a minute).

    .venv/bin/python bench/auth_overhead.py [--requests 5000] [--concurrency 32]
        [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from taskmesh_chassis.identity import StaticJwksProvider, TokenVerifier
from taskmesh_gateway.admission import AdmissionMiddleware, Gatekeeper
from taskmesh_gateway.clients import create_redis
from taskmesh_gateway.settings import GatewaySettings

USERS = 1000
LIMIT = 100


def mint_tokens(key: Ed25519PrivateKey, count: int) -> list[str]:
    """One access token per user, as the auth service signs them."""
    now = time.time()
    return [
        jwt.encode(
            {
                "iss": "taskmesh",
                "aud": "taskmesh-api",
                "sub": uuid.uuid4().hex[:24],
                "role": "user",
                "iat": now,
                "exp": now + 900,
                "jti": uuid.uuid4().hex,
                "sid": uuid.uuid4().hex,
            },
            key,
            algorithm="EdDSA",
            headers={"kid": "bench", "typ": "at+jwt"},
        )
        for _ in range(count)
    ]


async def time_each(step: Callable[[int], Awaitable[Any]], requests: int) -> list[float]:
    """Microseconds each call of `step(i)` took, one after the other."""
    for index in range(min(200, requests)):
        await step(index)
    samples = []
    for index in range(requests):
        started = time.perf_counter_ns()
        await step(index)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    """Print mean, p50 and p99 in microseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{name:<22} mean {statistics.fmean(samples):8.1f} µs   "
        f"p50 {statistics.median(samples):8.1f} µs   p99 {p99:8.1f} µs   (n={len(samples)})"
    )


async def main(requests: int, concurrency: int, redis_url: str) -> None:
    """Time each step and print the figures."""
    key = Ed25519PrivateKey.generate()
    # Enough users that none reaches its limit: four timed runs plus warm-ups charge them.
    users = max(USERS, math.ceil(4 * (requests + 200) / (LIMIT // 2)))
    tokens = mint_tokens(key, users)
    provider = StaticJwksProvider({"bench": key.public_key()})
    verifier = TokenVerifier(provider, issuer="taskmesh", audience="taskmesh-api")
    cold_verifier = TokenVerifier(
        provider, issuer="taskmesh", audience="taskmesh-api", cache_size=0
    )
    redis = create_redis(GatewaySettings(redis_url=SecretStr(redis_url)))
    gatekeeper = Gatekeeper(
        verifier, redis, user_limit_per_min=LIMIT, anonymous_limit_per_min=10**9
    )
    cold_gatekeeper = Gatekeeper(
        cold_verifier, redis, user_limit_per_min=LIMIT, anonymous_limit_per_min=10**9
    )
    authorizations = [f"Bearer {token}" for token in tokens]

    async def inner_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = AdmissionMiddleware(inner_app)
    app = SimpleNamespace(state=SimpleNamespace(gatekeeper=gatekeeper))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    async def through_middleware(index: int) -> None:
        authorization = authorizations[index % users].encode()
        scope = {
            "type": "http",
            "path": "/api/v1/tasks",
            "headers": [(b"authorization", authorization)],
            "client": ("203.0.113.9", 40000),
            "app": app,
        }
        await middleware(scope, receive, send)

    try:
        print(f"admission cost per request, {requests} requests, Redis at {redis_url}")
        cold = await time_each(lambda i: cold_verifier.verify(tokens[i % users]), requests)
        report("verify, first use", cold)
        for token in tokens:
            await verifier.verify(token)
        report(
            "verify, remembered",
            await time_each(lambda i: verifier.verify(tokens[i % users]), requests),
        )
        report(
            "admit (caller, first)",
            await time_each(
                lambda i: cold_gatekeeper.admit(authorizations[i % users], "203.0.113.9"),
                requests,
            ),
        )
        report(
            "admit (caller, remem.)",
            await time_each(
                lambda i: gatekeeper.admit(authorizations[i % users], "203.0.113.9"), requests
            ),
        )
        report(
            "admit (anonymous)",
            await time_each(lambda i: gatekeeper.admit(None, f"198.51.100.{i % 250}"), requests),
        )
        report("middleware", await time_each(through_middleware, requests))

        async def worker(offset: int) -> None:
            for index in range(offset, requests, concurrency):
                await gatekeeper.admit(authorizations[index % users], "203.0.113.9")

        started = time.perf_counter()
        await asyncio.gather(*(worker(offset) for offset in range(concurrency)))
        elapsed = time.perf_counter() - started
        print(
            f"{'concurrent (caller)':<22} {elapsed / requests * 1e6:8.1f} µs per request "
            f"({requests / elapsed:,.0f} admissions/s with {concurrency} in flight)"
        )
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.concurrency, arguments.redis_url))
