"""What SIGHUP does: start again every child that has exited, each until it is ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from taskmesh_localrun.console import Console, shown_path
from taskmesh_localrun.processes import STOP_GRACE_S, Child, Supervisor
from taskmesh_localrun.readiness import wait_until_ready


class Restarter:
    """Restarts a supervisor's exited children one after the other, in start order.

    Each is started with its own spec (command, environment, ports) and waited for on its
    readiness check; one that exits again is left exited (the supervisor reports it), one not
    ready in time is stopped again. Running children are left alone. `restarting` names the
    children still to be restarted; `on_change` is called whenever it changes.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        console: Console,
        *,
        ready_timeout_s: float,
        stop_requested: asyncio.Event,
        on_change: Callable[[], None],
    ) -> None:
        self._supervisor = supervisor
        self._console = console
        self._ready_timeout_s = ready_timeout_s
        self._stop_requested = stop_requested
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self.restarting: list[str] = []

    async def restart_exited(self) -> None:
        """Restart every exited child; give up as soon as a stop is requested."""
        async with self._lock:
            exited = [child for child in self._supervisor.children if child.returncode is not None]
            if not exited:
                self._console.info("SIGHUP: every process is running; nothing to restart")
                return
            self.restarting = [child.name for child in exited]
            self._on_change()
            try:
                for child in exited:
                    if self._stop_requested.is_set():
                        return
                    await self._restart(child)
                    self.restarting.remove(child.name)
                    self._on_change()
            finally:
                self.restarting = []

    async def _restart(self, child: Child) -> None:
        timeout_s = self._ready_timeout_s
        self._console.info(f"restarting {child.name}")
        try:
            await self._supervisor.restart(child)
        except OSError as exc:
            self._console.error(f"cannot restart {child.name}: {exc}")
            return
        if child.spec.ready_check is None:
            self._console.info(f"restarted {child.name} (pid {child.pid})")
            return
        assert child.process is not None
        readiness = asyncio.ensure_future(wait_until_ready(child.spec.ready_check, timeout_s))
        exit_ = asyncio.ensure_future(child.process.wait())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({readiness, exit_, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (readiness, exit_, stop):
                task.cancel()
        if stop.done() and not stop.cancelled():
            return
        if exit_.done() and not exit_.cancelled():
            self._console.error(f"{child.name} exited again right after its restart")
            return
        result = readiness.result()
        if result.ready:
            self._console.info(f"restarted {child.name} (pid {child.pid}); ready")
            return
        self._console.error(
            f"{child.name} is not ready {timeout_s:g} s after its restart ({result.detail}); "
            f"stopping it again; see {shown_path(child.spec.log_path)}"
        )
        await child.stop(STOP_GRACE_S)
