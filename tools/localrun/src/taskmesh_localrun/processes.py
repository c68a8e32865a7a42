"""The supervisor: starts children, copies their output, notices deaths, stops them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from itertools import groupby
from pathlib import Path
from typing import BinaryIO

from taskmesh_localrun.console import Console
from taskmesh_localrun.plan import ProcessSpec

LINE_LIMIT = 4 * 1024 * 1024
STOP_GRACE_S = 10.0
TAIL_LINES = 12


def describe_exit(returncode: int) -> str:
    """'exit code 1' or 'signal SIGKILL'."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines of a text file (empty if it does not exist)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            data = file.read()
    except FileNotFoundError:
        return []
    return [line.decode(errors="replace") for line in data.splitlines()[-lines:]]


class Child:
    """One supervised process, in its own process group, with its output in its log file."""

    def __init__(self, spec: ProcessSpec, console: Console) -> None:
        self.spec = spec
        self._console = console
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.started_at = 0.0
        self._pump_task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """The child's name (also its log file's stem)."""
        return self.spec.name

    @property
    def pid(self) -> int | None:
        """Its process id once started."""
        return None if self.process is None else self.process.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status once it has exited."""
        return None if self.process is None else self.process.returncode

    async def start(self, cwd: Path, *, append_log: bool = False) -> None:
        """Start the process; its log file is truncated, or appended to on a restart."""
        if self._pump_task is not None and not self._pump_task.done():
            self._pump_task.cancel()  # a grandchild of the last run still holds its pipe
        self.stopping = False
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.spec.log_path.open("ab" if append_log else "wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                cwd=cwd,
                env=dict(self.spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C reaches only the runner, which
                # then stops children in order, and killpg reaches grandchildren too.
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        except BaseException:
            log_file.close()
            raise
        self.started_at = time.monotonic()
        self._pump_task = asyncio.create_task(self._pump(log_file), name=f"pump-{self.name}")

    async def _pump(self, log_file: BinaryIO) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        stdout = self.process.stdout
        with log_file:
            while True:
                try:
                    line = await stdout.readline()
                except ValueError:  # a line longer than LINE_LIMIT: pass it on in pieces
                    line = await stdout.read(LINE_LIMIT)
                if not line:
                    return
                try:
                    log_file.write(line if line.endswith(b"\n") else line + b"\n")
                    log_file.flush()
                except OSError:
                    pass  # a full disk must not stop the draining, or the child would block
                self._console.child_line(self.name, line.decode(errors="replace").rstrip())

    async def wait(self) -> int:
        """Wait until it exits and its output is copied; return its exit status."""
        assert self.process is not None
        returncode = await self.process.wait()
        await self._drain_output(timeout_s=2.0)
        return returncode

    async def _drain_output(self, timeout_s: float) -> None:
        # A grandchild may keep the pipe open; do not wait for it forever.
        if self._pump_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump_task), timeout_s)

    def signal_group(self, signum: int) -> None:
        """Send signum to the child's whole process group (if any of it is left)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after grace_s; afterwards nothing of its group is left."""
        self.stopping = True
        if self.process is None:
            return
        if self.process.returncode is None:
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                self._console.info(f"{self.name} did not stop within {grace_s:g} s; killing it")
                self.signal_group(signal.SIGKILL)
                await self.process.wait()
        self.signal_group(signal.SIGKILL)  # any grandchild that outlived its parent
        await self._drain_output(timeout_s=1.0)
        if self._pump_task is not None and not self._pump_task.done():
            self._pump_task.cancel()


class Supervisor:
    """Starts children, tells when one dies on its own, stops all in reverse order."""

    def __init__(
        self,
        console: Console,
        cwd: Path,
        on_unexpected_exit: Callable[[Child], None] | None = None,
    ) -> None:
        self._console = console
        self._cwd = cwd
        self._on_unexpected_exit = on_unexpected_exit
        self.children: list[Child] = []
        self.unexpected_exit = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self, spec: ProcessSpec) -> Child:
        """Start one child and watch it."""
        child = Child(spec, self._console)
        await child.start(self._cwd)
        self.children.append(child)
        self._watch_in_background(child)
        return child

    async def restart(self, child: Child) -> None:
        """Start an exited child again (same spec, its log appended to) and watch it."""
        if child.returncode is None:
            raise ValueError(f"{child.name} is still running")
        await child.start(self._cwd, append_log=True)
        self._watch_in_background(child)

    def _watch_in_background(self, child: Child) -> None:
        watcher = asyncio.create_task(self._watch(child), name=f"watch-{child.name}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def start_all(self, specs: Iterable[ProcessSpec]) -> list[Child]:
        """Start several children."""
        return [await self.start(spec) for spec in specs]

    async def _watch(self, child: Child) -> None:
        await child.wait()
        if child.stopping:
            return
        self.unexpected_exit.set()
        if self._on_unexpected_exit is not None:
            self._on_unexpected_exit(child)

    def exited(self) -> list[Child]:
        """Children that have exited without being asked to."""
        return [c for c in self.children if c.returncode is not None and not c.stopping]

    async def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every child, the last-started tier first, each tier in parallel."""
        for child in self.children:
            child.stopping = True
        by_tier = sorted(self.children, key=lambda c: c.spec.tier, reverse=True)
        for _, tier in groupby(by_tier, key=lambda c: c.spec.tier):
            await asyncio.gather(*(child.stop(grace_s) for child in tier))
        for watcher in list(self._watchers):
            watcher.cancel()

    def kill_all(self) -> None:
        """SIGKILL every child's process group at once (the impatient second Ctrl-C)."""
        for child in self.children:
            child.stopping = True
            child.signal_group(signal.SIGKILL)
