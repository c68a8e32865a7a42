"""A throw-away SecantusDB server in its own process, for the benchmarks that need one."""

from __future__ import annotations

import socket
import subprocess
import sys
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_secantus(storage: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start SecantusDB on a free port with its data in `storage`; return it and its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--port", str(port), "--storage-path", storage],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"mongodb://127.0.0.1:{port}/?directConnection=true"
        time.sleep(0.1)
    process.terminate()
    raise SystemExit("SecantusDB did not start within 30 s")
