"""The run itself: preflight, start tier by tier, wait for readiness, supervise, stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from taskmesh_localrun import traefik
from taskmesh_localrun.console import Console, shown_path
from taskmesh_localrun.options import RunOptions
from taskmesh_localrun.plan import GrpcServing, HttpOk, Plan, PlanError, Tier, Tools, build_plan
from taskmesh_localrun.ports import is_port_listening
from taskmesh_localrun.preflight import preflight
from taskmesh_localrun.processes import Child, Supervisor, describe_exit, tail
from taskmesh_localrun.readiness import Probe, wait_until_ready
from taskmesh_localrun.restarts import Restarter
from taskmesh_localrun.state import write_state
from taskmesh_localrun.urls import redact_url

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


class _Interrupted(Exception):
    """Start-up ended early: Ctrl-C, or a child died."""

    def __init__(self, *, by_user: bool) -> None:
        super().__init__("interrupted")
        self.by_user = by_user


class Runner:
    """One `python -m taskmesh_localrun` invocation."""

    def __init__(
        self,
        options: RunOptions,
        environ: Mapping[str, str],
        console: Console,
        tools: Tools | None = None,
    ) -> None:
        self._options = options
        self._environ = dict(environ)
        self._console = console
        self._tools = tools
        self._status = "starting"
        self._extra: dict[str, Any] = {}
        self._stop_requested = asyncio.Event()
        self._plan: Plan | None = None
        self._supervisor: Supervisor | None = None
        self._restarter: Restarter | None = None
        self._restart_tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        """Run until Ctrl-C/SIGTERM; return the process exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup_signal)
        try:
            return await self._run()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    def _on_stop_signal(self) -> None:
        if not self._stop_requested.is_set():
            self._stop_requested.set()
            self._console.info("stopping everything (press Ctrl-C again to kill at once)")
        elif self._supervisor is not None:
            self._console.info("killing everything")
            self._supervisor.kill_all()

    async def _run(self) -> int:
        try:
            plan = build_plan(self._options, self._environ, self._tools)
        except PlanError as exc:
            self._console.error(str(exc))
            return EXIT_BAD_CONFIG
        self._plan = plan

        problems = await preflight(plan, self._environ)
        for problem in problems:
            self._console.error(problem)
        if problems:
            return EXIT_FAILED
        if self._stop_requested.is_set():
            return EXIT_OK

        self._prepare_files(plan)
        supervisor = Supervisor(self._console, Path.cwd(), self._on_unexpected_exit)
        self._supervisor = supervisor
        self._restarter = Restarter(
            supervisor,
            self._console,
            ready_timeout_s=self._options.ready_timeout_s,
            stop_requested=self._stop_requested,
            on_change=lambda: self._set_status(self._status),
        )
        self._console.register_names([spec.name for spec in plan.processes])
        began = time.monotonic()
        try:
            await self._start(plan, supervisor)
            ready_after_s = round(time.monotonic() - began, 1)
            self._extra["ready_after_s"] = ready_after_s
            self._set_status("ready")
            self._print_summary(plan, supervisor, ready_after_s)
            await self._stop_requested.wait()
            return EXIT_OK
        except _Interrupted as interruption:
            return EXIT_OK if interruption.by_user else EXIT_FAILED
        finally:
            self._set_status("stopping")
            # Restarts give up once a stop is requested; let them leave their children be.
            await asyncio.gather(*self._restart_tasks, return_exceptions=True)
            await supervisor.stop_all()
            self._set_status("stopped")
            self._console.info("stopped")

    def _prepare_files(self, plan: Plan) -> None:
        plan.log_dir.mkdir(parents=True, exist_ok=True)
        if plan.mail_dir is not None:
            plan.mail_dir.mkdir(parents=True, exist_ok=True)
        if plan.embedded_mongo:
            (plan.data_dir / "mongo").mkdir(parents=True, exist_ok=True)
        if plan.traefik_dir is not None:
            assert plan.public_port is not None
            assert plan.traefik_api_port is not None
            traefik.write_configs(
                plan.traefik_dir,
                public_port=plan.public_port,
                api_port=plan.traefik_api_port,
                gateway_urls=list(plan.gateway_urls),
                web_url=plan.web_url,
                log_dir=plan.log_dir,
                otlp_endpoint=traefik.otlp_endpoint(self._environ),
            )

    async def _start(self, plan: Plan, supervisor: Supervisor) -> None:
        timeout_s = self._options.ready_timeout_s
        for tier in Tier:
            specs = [spec for spec in plan.processes if spec.tier == tier]
            if not specs:
                continue
            self._console.info(f"starting {', '.join(spec.name for spec in specs)}")
            await supervisor.start_all(specs)
            self._set_status("starting")
            for spec in specs:
                if spec.ready_check is None:
                    continue
                result = await self._unless_interrupted(
                    wait_until_ready(spec.ready_check, timeout_s)
                )
                if not result.ready:
                    self._console.error(
                        f"{spec.name} is not ready after {timeout_s:g} s ({result.detail}); "
                        f"see {shown_path(spec.log_path)}"
                    )
                    raise _Interrupted(by_user=False)
        result = await self._unless_interrupted(wait_until_ready(plan.ready_check, timeout_s))
        if not result.ready:
            self._report_not_ready(plan, supervisor, result, timeout_s)
            raise _Interrupted(by_user=False)

    async def _unless_interrupted(self, readiness: Awaitable[Probe]) -> Probe:
        """Await readiness, unless Ctrl-C comes or a child dies first."""
        assert self._supervisor is not None
        waiting = asyncio.ensure_future(readiness)
        stop = asyncio.create_task(self._stop_requested.wait())
        death = asyncio.create_task(self._supervisor.unexpected_exit.wait())
        try:
            await asyncio.wait({waiting, stop, death}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stop, death):
                task.cancel()
        if stop.done() and not stop.cancelled():
            raise _Interrupted(by_user=True)
        if death.done() and not death.cancelled():
            self._console.error("start-up failed; stopping everything")
            raise _Interrupted(by_user=False)
        return waiting.result()

    def _report_not_ready(
        self, plan: Plan, supervisor: Supervisor, result: Probe, timeout_s: float
    ) -> None:
        what = "the suite" if isinstance(plan.ready_check, HttpOk) else "it"
        self._console.error(f"{what} is not ready after {timeout_s:g} s: {result.detail}")
        for child in supervisor.children:
            silent = [
                f"{role} port {port}"
                for role, port in child.spec.ports.items()
                if not is_port_listening(port)
            ]
            if silent:
                self._console.detail(
                    f"{child.name}: nothing listens on {', '.join(silent)} "
                    f"(see {shown_path(child.spec.log_path)})"
                )
        self._console.detail("stopping everything")

    def _on_hangup_signal(self) -> None:
        if self._console.terminal_hung_up():
            self._on_stop_signal()  # the terminal window was closed: stop, as Ctrl-C does
            return
        if self._status != "ready" or self._restarter is None:
            self._console.info(f"SIGHUP ignored: the run is {self._status}, not ready")
            return
        task = asyncio.create_task(self._restarter.restart_exited(), name="restart-exited")
        self._restart_tasks.add(task)
        task.add_done_callback(self._restart_tasks.discard)

    def _on_unexpected_exit(self, child: Child) -> None:
        returncode = child.returncode if child.returncode is not None else 0
        consequence = (
            "the others keep running" if self._status == "ready" else "start-up cannot continue"
        )
        self._console.error(
            f"{child.name} (pid {child.pid}) exited with {describe_exit(returncode)}; "
            f"{consequence}. Last lines of {shown_path(child.spec.log_path)}:"
        )
        for line in tail(child.spec.log_path):
            self._console.detail(line)
        self._set_status(self._status)

    def _set_status(self, status: str) -> None:
        self._status = status
        if self._plan is not None:
            children = self._supervisor.children if self._supervisor is not None else []
            with contextlib.suppress(OSError):
                restarting = [] if self._restarter is None else self._restarter.restarting
                write_state(self._plan, children, status, restarting=restarting, **self._extra)

    def _print_summary(self, plan: Plan, supervisor: Supervisor, ready_after_s: float) -> None:
        console = self._console
        where: list[list[str]] = []
        if plan.public_url is not None:
            console.info(f"taskmesh is ready after {ready_after_s} s at {plan.public_url}")
            if plan.web_url is not None:
                where.append(["web app", f"{plan.public_url}/"])
            where += [
                ["API", f"{plan.public_url}/api/v1/"],
                ["docs", f"{plan.public_url}/docs"],
                ["readiness", f"{plan.public_url}/readyz"],
                ["traefik", f"http://127.0.0.1:{plan.traefik_api_port}/dashboard/"],
            ]
        else:
            check = plan.ready_check
            where_it_is = (
                f"gRPC {check.target}"
                if isinstance(check, GrpcServing)
                else check.url.removesuffix("/healthz")
                if isinstance(check, HttpOk)
                else ""
            )
            console.info(f"{self._options.only} is ready after {ready_after_s} s at {where_it_is}")
        if plan.mongodb_url is not None:
            embedded = " (embedded SecantusDB)" if plan.embedded_mongo else ""
            where.append(["mongodb", f"{redact_url(plan.mongodb_url)}{embedded}"])
        if plan.mail_dir is not None:
            where.append(["mail", f"{shown_path(plan.mail_dir)}/*.eml (SMTP {plan.smtp_url})"])
        where.append(["state", shown_path(plan.data_dir / "localrun.json")])
        console.table(where)
        rows = [["process", "pid", "ports", "log"]]
        for child in supervisor.children:
            ports = " ".join(f"{role}={port}" for role, port in child.spec.ports.items())
            rows.append([child.name, str(child.pid), ports, shown_path(child.spec.log_path)])
        console.table(rows)
        console.info("Ctrl-C stops everything")
