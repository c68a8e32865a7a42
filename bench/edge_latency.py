"""Latency and throughput of the request path through Traefik and the gateway.

Starts the suite the way `make run` does (free ports, a throw-away data dir), then
measures, for a few routes, sequential latency (p50/p95/p99) and throughput with a
fixed number of concurrent clients. Prints figures; asserts nothing.

    .venv/bin/python bench/edge_latency.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# /healthz: Traefik and the gateway alone; /readyz: plus Redis, RabbitMQ and five gRPC health
# checks; the JWKS: an anonymous, rate-limited API route answered over gRPC by auth.
ROUTES = [
    "/healthz",
    "/readyz",
    "/.well-known/jwks.json",
]


def start_suite(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the local runner on free ports and wait for its readiness."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskmesh_localrun", "--free-ports", "--data-dir", str(data_dir)],
        env={
            **os.environ,
            "MONGODB_DATABASE_PREFIX": "bench_",
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


async def measure(url: str, path: str, n: int, conc: int) -> str:
    """GET path n times sequentially, then n times with conc workers; describe both."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        if (await client.get(path)).status_code != 200:
            return f"GET {path:24} does not answer 200; not measured"
        latencies = []
        for _ in range(min(n, 500)):
            started = time.perf_counter()
            await client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
        q = statistics.quantiles(latencies, n=100)
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.get(path)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        rps = n / (time.perf_counter() - started)
    quantiles = f"p50 {q[49]:6.2f} ms  p95 {q[94]:6.2f} ms  p99 {q[98]:6.2f} ms"
    return f"GET {path:24} {quantiles}  {rps:7.0f} req/s @{conc}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskmesh-bench-") as tmp:
        proc, url = start_suite(Path(tmp))
        try:
            for path in ROUTES:
                print(asyncio.run(measure(url, path, args.requests, args.concurrency)))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
