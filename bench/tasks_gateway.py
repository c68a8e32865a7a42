"""Latency of the task routes through Traefik and the gateway, with and without the list cache.

Starts the suite the way `make run` does (free ports, a throw-away data dir, rate limits
lifted), registers one user with 100 tasks, then measures one request at a time:

- GET /api/v1/tasks first page (limit 20), sorted `-created_at` and `due_at`:
  cache MISS (the user's cache generation is bumped in Redis before each request, untimed)
  and cache HIT;
- PATCH /api/v1/tasks/{id} (a title change; each one also invalidates the user's lists);
- as a baseline, GET /api/v1/auth/me served from its cache: Traefik, admission, one Redis GET.

Prints p50/p95/mean in milliseconds; asserts nothing.

    .venv/bin/python bench/tasks_gateway.py [--requests 300] [--tasks 100]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from redis import Redis

TASKS = "/api/v1/tasks"


def start_suite(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the local runner on free ports and wait for its readiness."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskmesh_localrun", "--free-ports", "--data-dir", str(data_dir)],
        env={
            **os.environ,
            "MONGODB_DATABASE_PREFIX": f"bench_{uuid.uuid4().hex[:6]}_",
            "RATE_LIMIT_USER_PER_MIN": "1000000",
            "RATE_LIMIT_ANON_PER_MIN": "1000000",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = data_dir / "localrun.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"runner exited with {proc.returncode}; see {data_dir}/logs")
        if state.exists():
            url = json.loads(state.read_text())["public_url"]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    raise SystemExit("suite not ready within 120 s")


def timed(
    samples: int, request: Callable[[], httpx.Response], before: Callable[[], None]
) -> list[float]:
    """Milliseconds of each of `samples` requests, after a short warm-up."""
    for _ in range(min(20, samples)):
        before()
        request()
    durations = []
    for _ in range(samples):
        before()
        started = time.perf_counter()
        response = request()
        durations.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            raise SystemExit(f"{response.status_code}: {response.text}")
    return durations


def report(name: str, durations: list[float], cache: str = "") -> None:
    """Print p50, p95 and mean of one measurement."""
    ordered = sorted(durations)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(
        f"{name:<44} {cache:<5} p50 {statistics.median(ordered):7.2f} ms   "
        f"p95 {p95:7.2f} ms   mean {statistics.fmean(ordered):7.2f} ms   n={len(ordered)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskmesh-bench-") as tmp:
        proc, url = start_suite(Path(tmp))
        try:
            run(url, args.requests, args.tasks)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)


def run(url: str, requests: int, task_count: int) -> None:
    """Set up the user and their tasks, then measure."""
    redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    with httpx.Client(base_url=url, timeout=30) as client:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        registered = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": "correct horse battery", "name": "Bench"},
        ).json()
        user_id = registered["user"]["id"]
        auth = {"Authorization": f"Bearer {registered['access_token']}"}
        now = datetime.now(UTC)
        task_ids = []
        for index in range(task_count):
            due_at = (now + timedelta(hours=(index * 7) % 500)).isoformat()
            created = client.post(
                TASKS, json={"title": f"task {index}", "due_at": due_at}, headers=auth
            )
            task_ids.append(created.json()["id"])
        print(f"user with {task_count} tasks, {requests} requests per line, one at a time\n")

        def invalidate() -> None:
            redis.incr(f"taskmesh:tasks:gen:{user_id}")

        def nothing() -> None:
            return None

        def me() -> httpx.Response:
            return client.get("/api/v1/auth/me", headers=auth)

        report(
            "GET /api/v1/auth/me (baseline: admission only)", timed(requests, me, nothing), "HIT"
        )
        for sort in ("-created_at", "due_at"):

            def first_page(sort: str = sort) -> httpx.Response:
                return client.get(TASKS, params={"sort": sort, "limit": 20}, headers=auth)

            name = f"GET {TASKS}?sort={sort}&limit=20"
            report(name, timed(requests, first_page, invalidate), "MISS")
            report(name, timed(requests, first_page, nothing), "HIT")

        counter = iter(range(10**9))

        def patch() -> httpx.Response:
            return client.patch(
                f"{TASKS}/{task_ids[0]}", json={"title": f"renamed {next(counter)}"}, headers=auth
            )

        report(f"PATCH {TASKS}/{{id}}", timed(requests, patch, nothing))


if __name__ == "__main__":
    main()
