"""The GitHub Actions workflows are valid, least-privileged, pinned, and build every deployable.

No runner is involved: each file under `.github/workflows/` is validated against the GitHub
workflow schema (`check-jsonschema --builtin-schema vendor.github-workflows`), then parsed to
check what the schema can't: read-only default permissions, write scopes only in jobs that run
for a version tag, third-party actions pinned to full commit SHAs, registry pushes and logins
only under a tag condition, an image built for every deployable from its own Dockerfile (the
web app's too), the test job's Redis and RabbitMQ where the code looks for them and at the
releases compose deploys, Node.js for the web app where `make lint` and `make test` need it,
a Chromium for the browser tests, timeouts, and no untrusted event data expanded inside a
shell script.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from taskmesh_chassis.settings import GrpcServiceSettings
from taskmesh_localrun.options import SERVICES

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
CI_SCRIPT = ROOT / ".ci" / "run"
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"

DEPLOYABLES = ("gateway", *SERVICES, "web")
COMPONENT_DIRS = {
    "gateway": "gateway",
    **{name: f"services/{name}" for name in SERVICES},
    "web": "web",
}
"""Where each deployable's Dockerfile lives (built from the repository root)."""
WEB_DOCKERFILE = ROOT / "web" / "Dockerfile"
WEB_PACKAGE = ROOT / "web" / "package.json"

BUILD_PUSH_ACTION = "docker/build-push-action"
LOGIN_ACTION = "docker/login-action"
CHECKOUT_ACTION = "actions/checkout"
SETUP_PYTHON_ACTION = "actions/setup-python"
CACHE_ACTION = "actions/cache"
SETUP_NODE_ACTION = "actions/setup-node"

TAG_CONDITION = "startsWith(github.ref, 'refs/tags/v')"
"""The expression a job or step must test before it may write to a registry."""
WRITE_SCOPES_ON_TAGS = frozenset({"packages"})
"""The only scopes a job may be granted `write` on, and only in a job that runs for tags."""
UNSAFE_TRIGGERS = frozenset({"pull_request_target", "workflow_run"})
"""Triggers that run with a write token on code or data from outside the repository."""

PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<ref>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\s*$"
)
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<value>\S+)")
EXPRESSION = re.compile(r"\$\{\{(?P<body>.*?)\}\}", re.DOTALL)
UNTRUSTED_CONTEXT = re.compile(
    r"github\.(event\.|head_ref)|inputs\.|steps\.[\w-]+\.outputs\.", re.IGNORECASE
)
"""Values an outsider can choose (a branch name, a PR title, a previous step's output from
them): expanded into a `run:` script they become shell code; they must go through `env:`."""


class _WorkflowLoader(yaml.SafeLoader):
    """Booleans as GitHub reads them (YAML 1.2): `true` and `false` only.

    PyYAML follows YAML 1.1, where `on`, `off`, `yes` and `no` are booleans too, so the key
    `on` would be read as True.
    """


_BOOL = "tag:yaml.org,2002:bool"
_WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_WorkflowLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_workflow(path: Path) -> dict[str, Any]:
    """The workflow as GitHub reads it (no YAML 1.1 booleans such as `on`/`yes`)."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_WorkflowLoader)
    assert isinstance(document, dict), f"{path.name}: not a mapping"
    return document


@dataclass(frozen=True)
class Step:
    """One step of one job, with where it is for the failure messages."""

    workflow: str
    job_id: str
    job: Mapping[str, Any]
    step: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.workflow}: job {self.job_id!r}, step {self.step.get('name') or self.uses}"

    @property
    def uses(self) -> str | None:
        value = self.step.get("uses")
        return str(value) if value is not None else None

    @property
    def action(self) -> str | None:
        """The action's `owner/repo[/path]` without its ref."""
        return self.uses.partition("@")[0] if self.uses else None

    @property
    def inputs(self) -> Mapping[str, Any]:
        return self.step.get("with") or {}


def jobs(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The workflow's jobs by id."""
    found = workflow.get("jobs")
    assert isinstance(found, dict), "a workflow needs jobs"
    return found


def all_steps() -> Iterator[Step]:
    """Every step of every job of every workflow."""
    for path in WORKFLOWS:
        for job_id, job in jobs(load_workflow(path)).items():
            for step in job.get("steps", []):
                yield Step(path.name, job_id, job, step)


def steps_using(action: str) -> list[Step]:
    """The steps that run `action` (any ref)."""
    return [step for step in all_steps() if step.action == action]


def runs_only_on_tags(*conditions: object) -> bool:
    """Whether one of these expressions restricts a job or step to version tags.

    It does when the tag test is one of the terms of a plain conjunction (`a && b`): no `||`,
    no negation of the test, which could let another ref through.
    """
    for condition in conditions:
        if not condition:
            continue
        text = str(condition).strip()
        expression = EXPRESSION.fullmatch(text)
        body = expression.group("body") if expression else text
        if "||" in body:
            continue
        if TAG_CONDITION in (term.strip() for term in body.split("&&")):
            return True
    return False


def matrix_entries(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A job's matrix as its list of `include` entries."""
    matrix = job.get("strategy", {}).get("matrix", {})
    assert set(matrix) == {"include"}, "the image matrices list their entries under `include`"
    entries = matrix["include"]
    assert isinstance(entries, list)
    return entries


def resolve_matrix(value: object, entry: Mapping[str, Any]) -> str:
    """`value` with `${{ matrix.x }}` replaced by the entry's `x`."""
    text = str(value)
    for key, replacement in entry.items():
        text = re.sub(r"\$\{\{\s*matrix\." + re.escape(key) + r"\s*\}\}", str(replacement), text)
    return text


def resolve_env(value: object, environment: Mapping[str, Any]) -> str:
    """`value` with `${{ env.X }}` replaced by the workflow's `X`."""
    return re.sub(
        r"\$\{\{\s*env\.(\w+)\s*\}\}",
        lambda match: str(environment[match.group(1)]),
        str(value),
    )


def code_default_endpoint(field: str) -> tuple[str, int]:
    """Host and port of a URL setting's default (`redis_url`, `amqp_url`) in the chassis."""
    default = GrpcServiceSettings.model_fields[field].default
    parts = urlsplit(default.get_secret_value())
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def required_python() -> str:
    """The Python minor version the workspace pins (`>=3.11,<3.12` → `3.11`)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    match = re.fullmatch(r">=(\d+\.\d+),<\d+\.\d+", project["requires-python"])
    assert match, f"unexpected requires-python {project['requires-python']!r}"
    return match.group(1)


def image_jobs() -> dict[str, dict[str, Any]]:
    """The jobs (any workflow) that build images, by `<workflow>:<job id>`."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps_using(BUILD_PUSH_ACTION):
        found[f"{step.workflow}:{step.job_id}"] = dict(step.job)
    return found


# --- The files -------------------------------------------------------------------------------


def test_there_is_a_workflow() -> None:
    assert WORKFLOWS, f"no workflow under {WORKFLOWS_DIR.relative_to(ROOT)}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_the_workflow_is_valid_against_the_github_workflow_schema(path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Triggers, permissions, concurrency, timeouts ----------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_trigger_runs_outside_code_with_a_write_token(path: Path) -> None:
    triggers = load_workflow(path)["on"]
    names = {triggers} if isinstance(triggers, str) else set(triggers)
    assert not names & UNSAFE_TRIGGERS


def test_ci_runs_on_pushes_to_main_version_tags_and_pull_requests() -> None:
    triggers = load_workflow(WORKFLOWS_DIR / "ci.yml")["on"]
    assert "pull_request" in triggers
    assert "main" in triggers["push"]["branches"]
    assert "v*" in triggers["push"]["tags"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_the_default_permissions_only_read_the_repository(path: Path) -> None:
    assert load_workflow(path).get("permissions") == {"contents": "read"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_a_write_permission_is_granted_only_to_a_job_that_runs_for_tags(path: Path) -> None:
    for job_id, job in jobs(load_workflow(path)).items():
        permissions = job.get("permissions")
        if permissions is None:
            continue
        assert isinstance(permissions, dict), f"job {job_id!r}: permissions must list scopes"
        written = {scope for scope, level in permissions.items() if level == "write"}
        if not written:
            continue
        assert written <= WRITE_SCOPES_ON_TAGS, f"job {job_id!r} may write {sorted(written)}"
        assert runs_only_on_tags(job.get("if")), f"job {job_id!r} writes outside a tag run"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_a_newer_run_cancels_the_one_it_supersedes(path: Path) -> None:
    concurrency = load_workflow(path).get("concurrency")
    assert isinstance(concurrency, dict)
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] not in (None, False)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_has_a_timeout(path: Path) -> None:
    for job_id, job in jobs(load_workflow(path)).items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int), f"job {job_id!r} has no timeout-minutes"
        assert 0 < timeout <= 60, f"job {job_id!r}: {timeout} minutes"


# --- Actions and scripts ---------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_with_its_release_beside_it(path: Path) -> None:
    uses_lines = [
        (number, line)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if USES_LINE.match(line)
    ]
    assert uses_lines, f"{path.name} uses no action"
    for number, line in uses_lines:
        value = USES_LINE.match(line)
        assert value is not None
        if value.group("value").startswith("./"):
            continue
        assert PINNED_USES.match(line), (
            f"{path.name}:{number}: pin to a full commit SHA with `# vX.Y.Z` after it: {line}"
        )


def test_checkout_leaves_no_token_in_the_working_copy() -> None:
    checkouts = steps_using(CHECKOUT_ACTION)
    assert checkouts
    for step in checkouts:
        assert step.inputs.get("persist-credentials") is False, step.where


def test_no_script_expands_data_an_outsider_chooses() -> None:
    for step in all_steps():
        script = step.step.get("run")
        if script is None:
            continue
        for expression in EXPRESSION.finditer(str(script)):
            assert not UNTRUSTED_CONTEXT.search(expression.group("body")), (
                f"{step.where}: pass {expression.group(0)} through env:, not into the script"
            )


# --- Lint and test jobs ----------------------------------------------------------------------


def make_targets_run(workflow: Mapping[str, Any]) -> set[str]:
    """The `make <target>` commands the workflow's steps run."""
    targets: set[str] = set()
    for job in jobs(workflow).values():
        for step in job.get("steps", []):
            targets.update(re.findall(r"^\s*make\s+([\w-]+)", str(step.get("run", "")), re.M))
    return targets


def test_ci_runs_what_the_ci_script_runs() -> None:
    script_targets = set(
        re.findall(r"^\s*make\s+([\w-]+)", CI_SCRIPT.read_text(encoding="utf-8"), re.M)
    )
    assert script_targets == {"lint", "test"}
    assert script_targets <= make_targets_run(load_workflow(WORKFLOWS_DIR / "ci.yml"))


def test_python_is_the_version_the_workspace_requires() -> None:
    setups = steps_using(SETUP_PYTHON_ACTION)
    assert setups
    for step in setups:
        environment = load_workflow(WORKFLOWS_DIR / step.workflow).get("env", {})
        version = resolve_env(step.inputs["python-version"], environment)
        assert version == required_python(), step.where


def test_the_uv_cache_is_keyed_on_the_lock_file() -> None:
    caches = steps_using(CACHE_ACTION)
    assert {step.job_id for step in caches} >= {"lint", "test"}
    for step in caches:
        assert step.inputs["path"] == "~/.cache/uv", step.where
        assert "hashFiles('uv.lock')" in step.inputs["key"], step.where


def test_the_test_job_has_redis_and_rabbitmq_where_the_code_looks_for_them() -> None:
    test_job = jobs(load_workflow(WORKFLOWS_DIR / "ci.yml"))["test"]
    services = test_job["services"]
    for name, field in (("redis", "redis_url"), ("rabbitmq", "amqp_url")):
        host, port = code_default_endpoint(field)
        assert host == "127.0.0.1"
        service = services[name]
        assert service["image"].startswith(f"{name}:")
        assert f"{port}:{port}" in service["ports"], f"{name} must publish {port}"
        assert "--health-cmd" in service["options"], f"{name} has no health check"


def test_the_test_job_uses_the_redis_and_rabbitmq_releases_compose_deploys() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    services = jobs(load_workflow(WORKFLOWS_DIR / "ci.yml"))["test"]["services"]
    assert services["redis"]["image"] == compose["redis"]["image"]
    assert services["rabbitmq"]["image"] == compose["rabbitmq"]["image"]


def test_the_test_job_installs_a_pinned_kubectl_for_the_k8s_checks() -> None:
    workflow = load_workflow(WORKFLOWS_DIR / "ci.yml")
    assert re.fullmatch(r"v1\.\d+\.\d+", workflow["env"]["KUBECTL_VERSION"])
    scripts = "\n".join(str(step.get("run", "")) for step in jobs(workflow)["test"]["steps"])
    assert "dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" in scripts
    assert "sha256sum --check" in scripts


def test_the_jobs_that_run_npm_set_up_the_node_release_the_web_image_builds_with() -> None:
    workflow = load_workflow(WORKFLOWS_DIR / "ci.yml")
    builder = re.search(r"^FROM node:(\d+)\.", WEB_DOCKERFILE.read_text(), re.M)
    assert builder, "web/Dockerfile builds on a node image"
    engines = json.loads(WEB_PACKAGE.read_text())["engines"]["node"]
    setups = steps_using(SETUP_NODE_ACTION)

    # `make lint` runs tsc and eslint, `make test` builds the app and runs Vitest.
    assert {step.job_id for step in setups} == {"lint", "test"}
    for step in setups:
        version = resolve_env(step.inputs["node-version"], workflow.get("env", {}))
        assert version == builder.group(1), step.where
        assert engines.startswith(f">={version}."), f"{step.where}: engines {engines}"
        assert step.inputs["cache"] == "npm", step.where
        assert step.inputs["cache-dependency-path"] == "web/package-lock.json", step.where
        runs = [str(job_step.get("run", "")) for job_step in step.job["steps"]]
        first_make = next(index for index, run in enumerate(runs) if "make " in run)
        assert step.job["steps"].index(step.step) < first_make, f"{step.where}: after make"


def test_the_test_job_gives_the_browser_tests_the_runners_chrome() -> None:
    test_job = jobs(load_workflow(WORKFLOWS_DIR / "ci.yml"))["test"]

    # Ubuntu's chromium package is a snap a runner cannot start; the image has Chrome.
    assert test_job["env"]["CHROMIUM_PATH"] == "/usr/bin/google-chrome"


# --- Images ----------------------------------------------------------------------------------


def test_every_deployable_has_a_dockerfile_where_the_workflow_builds_it() -> None:
    present = {
        path.parent.relative_to(ROOT).as_posix()
        for path in [
            ROOT / "gateway" / "Dockerfile",
            *ROOT.glob("services/*/Dockerfile"),
            WEB_DOCKERFILE,
        ]
        if path.is_file()
    }
    assert present == set(COMPONENT_DIRS.values())


def test_every_image_job_builds_every_deployable_from_its_own_dockerfile() -> None:
    found = image_jobs()
    assert found, "no job builds images"
    for name, job in found.items():
        entries = matrix_entries(job)
        components = [entry["component"] for entry in entries]
        assert sorted(components) == sorted(DEPLOYABLES), name
        for entry in entries:
            assert entry["dockerfile"] == f"{COMPONENT_DIRS[entry['component']]}/Dockerfile"


def test_images_are_built_from_the_repository_root() -> None:
    builds = steps_using(BUILD_PUSH_ACTION)
    assert builds
    for step in builds:
        assert step.inputs["context"] == ".", step.where
        for entry in matrix_entries(step.job):
            dockerfile = resolve_matrix(step.inputs["file"], entry)
            assert (ROOT / dockerfile).is_file(), f"{step.where}: no {dockerfile}"


def test_an_image_is_pushed_only_for_a_version_tag() -> None:
    pushes = [step for step in steps_using(BUILD_PUSH_ACTION) if step.inputs.get("push")]
    assert pushes, "no job ever pushes the images"
    for step in pushes:
        assert runs_only_on_tags(step.job.get("if"), step.step.get("if")), step.where
        assert runs_only_on_tags(step.inputs["push"]), f"{step.where}: push must test the tag"
        assert "packages" in step.job.get("permissions", {}), step.where
        assert {"lint", "test"} <= set(step.job.get("needs", [])), (
            f"{step.where}: publishes without waiting for lint and tests"
        )


def test_the_registry_is_logged_into_only_for_a_version_tag() -> None:
    logins = steps_using(LOGIN_ACTION)
    assert logins
    for step in logins:
        assert runs_only_on_tags(step.job.get("if"), step.step.get("if")), step.where
        assert step.inputs["registry"] == "ghcr.io", step.where
        assert step.inputs["password"] == "${{ secrets.GITHUB_TOKEN }}", step.where


def test_published_images_are_named_after_their_component() -> None:
    metadata = steps_using("docker/metadata-action")
    assert metadata
    for step in metadata:
        for entry in matrix_entries(step.job):
            image = resolve_matrix(step.inputs["images"], entry)
            assert re.fullmatch(r"ghcr\.io/\$\{\{ github\.repository_owner \}\}/[a-z]+", image)
            assert image.rsplit("/", 1)[1] == entry["component"], step.where
