"""Latency of the task routes through Traefik and the gateway, as the tasks collection grows.

Starts the suite the way `make run` does (free ports, a throw-away data dir, rate limits
lifted), then measures one request at a time, through Traefik and the gateway:

- GET /api/v1/tasks first page (limit 20), sorted `-created_at` and `due_at`:
  cache MISS (the user's cache generation is bumped in Redis before each request, untimed;
  the realistic worst case) and cache HIT;
- PATCH /api/v1/tasks/{id} (a title change on one of the user's tasks);

(a) for a user with 100 tasks while the collection holds 1,000 / 100,000 (/ 1,000,000 with
    --million) tasks of other users;
(b) for one user holding 100 / 10,000 / 100,000 tasks (the collection also holding (a)'s).

Users register through the gateway; their tasks and other users' are bulk-loaded straight
into the suite's tasks database (`<prefix>tasks`) with bench/tasks_list.py's document builder
and loader (imported, not copied), into the indexed collection.
A request that fails or times out is counted with its status; the run goes on. As a
baseline, GET /api/v1/auth/me served from its cache. Prints p50/p95; asserts nothing.

    .venv/bin/python bench/tasks_gateway.py [--samples 40] [--million] [--scenarios a|b|ab]

SIGTERM stops it like Ctrl-C: the suite it started is stopped and its data removed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient
from redis import Redis

TASKS = "/api/v1/tasks"
PASSWORD = "correct horse battery"
SORTS = ("-created_at", "due_at")
CLIENT_TIMEOUT_S = 30.0
T = TypeVar("T")


def _import_tasks_list() -> ModuleType:
    """bench/tasks_list.py as a module: its task documents, loader and percentiles."""
    path = Path(__file__).with_name("tasks_list.py")
    spec = importlib.util.spec_from_file_location("taskmesh_bench_tasks_list", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tasks_list = _import_tasks_list()


def start_suite(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start the local runner on free ports, wait for its readiness; (process, url, prefix)."""
    prefix = f"bench_{uuid.uuid4().hex[:6]}_"
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskmesh_localrun", "--free-ports", "--data-dir", str(data_dir)],
        env={
            **os.environ,
            "MONGODB_DATABASE_PREFIX": prefix,
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
                    return proc, url, prefix
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    raise SystemExit("suite not ready within 120 s")


class TaskDatabase:
    """The suite's tasks database, for loading tasks with bench/tasks_list.py's loader."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._probe: MongoClient[dict[str, Any]] = MongoClient(url, tz_aware=True)

    def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.url, tz_aware=True)
            try:
                return await work(client[self.name])
            finally:
                await client.close()

        return asyncio.run(go())

    def load(self, owners: Callable[[int], str], count: int) -> float:
        """Insert `count` tasks (owner of the i-th: owners(i)); the seconds it took.

        The indexes stay in place: rebuilding them while the suite's services query
        SecantusDB hung it twice (an index build blocked inside WiredTiger, every other
        command waiting behind it).
        """
        seconds: float = self._run(
            lambda database: tasks_list.load(database, owners, count, rebuild_indexes=False)
        )
        return seconds

    def task_ids(self, user_id: str) -> list[str]:
        ids: list[str] = self._run(lambda database: tasks_list.user_task_ids(database, user_id))
        return ids

    def wait_idle(self, limit_s: float = 90.0) -> float:
        """Wait until a find by _id answers fast twice in a row (abandoned queries done)."""
        started = time.monotonic()
        fast = 0
        collection = self._probe[self.name][tasks_list.TASKS]
        while fast < 2 and time.monotonic() - started < limit_s:
            probe = time.perf_counter()
            collection.find_one({"_id": ObjectId()})
            fast = fast + 1 if time.perf_counter() - probe < 0.05 else 0
            time.sleep(0.2)
        return time.monotonic() - started

    def close(self, drop: bool) -> None:
        if drop:
            self._probe.drop_database(self.name)
        self._probe.close()


@dataclass
class Outcome:
    """What `samples` requests gave: times of the successes, statuses of the failures."""

    ok_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    failure_ms: list[float] = field(default_factory=list)
    cache_mismatches: int = 0


def send(request: Callable[[], httpx.Response]) -> tuple[float, str | None, str | None]:
    """(milliseconds, failure status or None, X-Cache header) of one request."""
    started = time.perf_counter()
    try:
        response = request()
    except httpx.TimeoutException:
        return (time.perf_counter() - started) * 1000, "timeout", None
    except httpx.HTTPError as error:
        return (time.perf_counter() - started) * 1000, type(error).__name__, None
    elapsed = (time.perf_counter() - started) * 1000
    failure = str(response.status_code) if response.status_code >= 400 else None
    return elapsed, failure, response.headers.get("x-cache")


def measure(
    samples: int,
    warmups: int,
    request: Callable[[], httpx.Response],
    before: Callable[[], None],
    cache: str = "",
) -> Outcome:
    """Time `samples` requests after `warmups` untimed ones; failures counted, never raised."""
    for _ in range(warmups):
        before()
        send(request)
    outcome = Outcome()
    for _ in range(samples):
        before()
        elapsed, failure, x_cache = send(request)
        if failure is None:
            outcome.ok_ms.append(elapsed)
            if cache and x_cache != cache:
                outcome.cache_mismatches += 1
        else:
            outcome.failures[failure] += 1
            outcome.failure_ms.append(elapsed)
    return outcome


def summary(outcome: Outcome, cache: str) -> str:
    parts = []
    if outcome.ok_ms:
        parts.append(f"{tasks_list.percentiles(outcome.ok_ms)}  n={len(outcome.ok_ms)}")
    if outcome.failures:
        statuses = ", ".join(f"{status} x{count}" for status, count in outcome.failures.items())
        after = statistics.median(outcome.failure_ms) / 1000
        every = "all " if not outcome.ok_ms else ""
        total = sum(outcome.failures.values())
        parts.append(f"{every}{total} failed: {statuses} (after ~{after:.1f} s)")
    if outcome.cache_mismatches:
        parts.append(f"X-Cache not {cache} on {outcome.cache_mismatches}")
    return "   ".join(parts)


def line(name: str, cache: str, text: str) -> None:
    print(f"    {name:<24} {cache:<5} {text}", flush=True)


class Gateway:
    """One HTTP client through Traefik + gateway, and the Redis the gateway caches in."""

    def __init__(self, client: httpx.Client, redis: Redis, database: TaskDatabase) -> None:
        self.client = client
        self.redis = redis
        self.database = database

    def register(self) -> tuple[str, str]:
        """A new user: (email, id)."""
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        response = self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        response.raise_for_status()
        return email, response.json()["user"]["id"]

    def headers(self, email: str) -> dict[str, str]:
        """A fresh access token for the user (a long run outlives one)."""
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def settle(self) -> None:
        """After failed requests, let the database finish the queries they abandoned."""
        waited = self.database.wait_idle()
        if waited > 1:
            print(f"      (waited {waited:.0f} s for the database to go idle before going on)")

    def step(self, email: str, user_id: str, samples: int, warmups: int, label: str) -> None:
        """The five lines of one size: pages MISS and HIT for each sort, then a PATCH."""
        print(f"  {label}", flush=True)
        auth = self.headers(email)
        task_ids = self.database.task_ids(user_id)

        def invalidate() -> None:
            self.redis.incr(f"taskmesh:tasks:gen:{user_id}")

        def nothing() -> None:
            return None

        for sort in SORTS:

            def first_page(sort: str = sort) -> httpx.Response:
                return self.client.get(TASKS, params={"sort": sort, "limit": 20}, headers=auth)

            name = f"GET first 20 {sort}"
            outcome = measure(samples, warmups, first_page, invalidate, "MISS")
            line(name, "MISS", summary(outcome, "MISS"))
            if outcome.failures:
                self.settle()
            invalidate()
            _, failure, _ = send(first_page)  # fills the cache
            if failure is not None:
                line(name, "HIT", f"not measured: the page to cache failed too ({failure})")
                self.settle()
                continue
            outcome = measure(samples, warmups, first_page, nothing, "HIT")
            line(name, "HIT", summary(outcome, "HIT"))

        def patch() -> httpx.Response:
            return self.client.patch(
                f"{TASKS}/{random.choice(task_ids)}",
                json={"title": f"Renamed {uuid.uuid4().hex[:6]}"},
                headers=auth,
            )

        outcome = measure(samples, warmups, patch, nothing)
        line("PATCH title", "", summary(outcome, ""))
        if outcome.failures:
            self.settle()


HEADER = """\
Task routes through Traefik + gateway (one client, one request at a time; p50/p95 in ms
over n timed requests after a few untimed warm-ups). Lines of each size:
  GET first 20 <sort> MISS  GET {tasks}?sort=<sort>&limit=20 with the user's list-cache
                            generation bumped in Redis before each request (untimed), so
                            every page is read from the tasks service and its database
  GET first 20 <sort> HIT   the same request answered from the gateway's list cache
  PATCH title               PATCH {tasks}/{{id}} (new title) on a random task of the user's;
                            it also invalidates the user's cached lists
  "k failed: S xc (after ~t s)": c requests answered with status S, or "timeout" on the
  client at {timeout:.0f} s; the gateway gives the service {deadline} s (GRPC_DEADLINE_S), then 504.
Tasks are bulk-loaded straight into the suite's tasks database by bench/tasks_list.py's loader
(load time shown); sizes in (b) are in a collection also holding (a)'s tasks.
"""


def run(
    gateway: Gateway, database: TaskDatabase, samples: int, million: bool, scenarios: str
) -> None:
    """The baseline, then scenarios (a) and/or (b)."""
    deadline = os.environ.get("GRPC_DEADLINE_S", "5")
    print(HEADER.format(tasks=TASKS, timeout=CLIENT_TIMEOUT_S, deadline=deadline))
    print(f"tasks database {database.name}, collection {tasks_list.TASKS}; {samples} samples\n")

    email, _ = gateway.register()
    auth = gateway.headers(email)

    def me() -> httpx.Response:
        return gateway.client.get("/api/v1/auth/me", headers=auth)

    outcome = measure(samples, 5, me, lambda: None, "HIT")
    line("GET /api/v1/auth/me", "HIT", summary(outcome, "HIT") + "   (baseline: admission)")

    if "a" in scenarios:
        scenario_a(gateway, database, samples, million)
    if "b" in scenarios:
        scenario_b(gateway, database, samples)


def scenario_a(gateway: Gateway, database: TaskDatabase, samples: int, million: bool) -> None:
    """A user with 100 tasks while other users' tasks grow to 1,000 / 100,000 (/ 1,000,000)."""
    print("(a) a user with 100 tasks; the collection also holds other users' tasks")
    email, user_id = gateway.register()
    database.load(lambda i: user_id, 100)
    others = [str(ObjectId()) for _ in range(1000)]
    loaded = 0
    per_task_s = 0.0
    for size in [1_000, 100_000] + ([1_000_000] if million else []):
        added = size - loaded
        seconds = database.load(lambda i: others[i % len(others)], added)
        per_task_s = seconds / added
        loaded = size
        label = f"others' tasks: {size:>9,}  (loaded {added:,} more in {seconds:.1f} s)"
        gateway.step(email, user_id, samples, 5, label)
    if not million:
        estimate = per_task_s * 900_000 / 60
        print(
            f"  others' tasks: 1,000,000  skipped: loading would take about {estimate:.0f} min "
            "here (from the 100,000 load); run with --million to measure it"
        )


def scenario_b(gateway: Gateway, database: TaskDatabase, samples: int) -> None:
    """One user holding 100 / 10,000 / 100,000 tasks."""
    print("(b) one user holding many tasks")
    email, user_id = gateway.register()
    owned = 0
    for size in (100, 10_000, 100_000):
        added = size - owned
        seconds = database.load(lambda i: user_id, added)
        owned = size
        label = f"the user's tasks: {size:>7,}  (loaded {added:,} more in {seconds:.1f} s)"
        # Pages of a user this large take seconds each on SecantusDB (see docs/tasks.md).
        if size <= 100:
            runs, warmups = samples, 5
        else:
            runs, warmups = max(3, samples // (4 if size <= 10_000 else 10)), 1
        gateway.step(email, user_id, runs, warmups, label)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C, so the `finally` blocks stop the suite and remove its data."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="timed requests per line")
    parser.add_argument("--million", action="store_true", help="also load 1,000,000 tasks")
    parser.add_argument(
        "--scenarios", choices=("a", "b", "ab"), default="ab", help="which scenarios to run"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    random.seed(7)
    # Silence the loader's index-rebuild log lines, as bench/tasks_list.py does.
    tasks_list.configure_logging("tasks", "CRITICAL", "json")
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="taskmesh-bench-") as tmp:
        proc, url, prefix = start_suite(Path(tmp))
        try:
            state = json.loads((Path(tmp) / "localrun.json").read_text())
            # localrun.json redacts a password; the runner took the URL from the environment.
            mongo_url = os.environ.get("MONGODB_URL") or state["mongodb_url"]
            database = TaskDatabase(mongo_url, f"{prefix}tasks")
            redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
            try:
                with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
                    gateway = Gateway(client, redis, database)
                    run(gateway, database, args.samples, args.million, args.scenarios)
            finally:
                # An external MongoDB keeps what was loaded; the embedded one goes with tmp.
                database.close(drop=not state["mongodb_embedded"])
                redis.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
