"""<data-dir>/localrun.json: what runs where, for people and for the end-to-end tests."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskmesh_localrun.plan import Plan
from taskmesh_localrun.processes import Child
from taskmesh_localrun.urls import redact_url

STATE_FILE = "localrun.json"


def describe_run(
    plan: Plan, children: Sequence[Child], status: str, **extra: Any
) -> dict[str, Any]:
    """The content of localrun.json: every planned process, with a pid once started."""
    public_url = plan.public_url
    started = {child.name: child for child in children}
    return {
        "status": status,
        **extra,
        "runner_pid": os.getpid(),
        "public_url": public_url,
        "docs_url": None if public_url is None else f"{public_url}/docs",
        "traefik_dashboard_url": (
            None
            if plan.traefik_api_port is None
            else f"http://127.0.0.1:{plan.traefik_api_port}/dashboard/"
        ),
        "mongodb_url": None if plan.mongodb_url is None else redact_url(plan.mongodb_url),
        "mongodb_embedded": plan.embedded_mongo,
        "smtp_url": None if plan.smtp_url is None else redact_url(plan.smtp_url),
        "mail_dir": None if plan.mail_dir is None else str(plan.mail_dir),
        "data_dir": str(plan.data_dir),
        "log_dir": str(plan.log_dir),
        "processes": [
            {
                "name": spec.name,
                "pid": started[spec.name].pid if spec.name in started else None,
                "ports": dict(spec.ports),
                "log": str(spec.log_path),
                "argv": list(spec.argv),
                "returncode": started[spec.name].returncode if spec.name in started else None,
            }
            for spec in plan.processes
        ],
    }


def write_state(plan: Plan, children: Sequence[Child], status: str, **extra: Any) -> Path:
    """Write localrun.json atomically (readers never see half a file)."""
    path = plan.data_dir / STATE_FILE
    partial = path.with_name(f".{STATE_FILE}.partial")
    content = describe_run(plan, children, status, **extra)
    partial.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(partial, path)
    return path
