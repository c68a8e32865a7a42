"""The container images: one Dockerfile per deployable, held to the rules of issue 9.

No Docker engine runs here, so the Dockerfiles are parsed and checked statically: two stages,
the final one on a pinned slim Python image, a numeric non-root user, a HEALTHCHECK, exec-form
commands, `uv sync --frozen` of only the component's packages, ports and environment equal to
the code's defaults. The integration test then runs each builder stage's instructions (its
COPYs from the build context as .dockerignore leaves it, and its RUNs) in a temporary
directory, and imports the component from the virtualenv they produce: the recipe works.

The web app's image (web/Dockerfile) is checked apart: a pinned Node.js builds it from the
committed lock, a pinned unprivileged nginx serves it with web/nginx.conf
(tests/deploy/test_web_serving.py runs that file).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from taskmesh_localrun.options import SERVICES
from taskmesh_localrun.webapp import SECURITY_HEADERS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOYABLES = ("gateway", *SERVICES)
RUNTIME_USER = "10001:10001"
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-(bookworm|trixie)$")
"""Exact patch release and Debian release: the same base whenever the image is rebuilt."""
VENV = "/app/.venv"
SYNTAX_DIRECTIVE = "# syntax=docker/dockerfile:1"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|SIGNING_KEY|API_KEY", re.IGNORECASE)
DEV_ONLY_DISTRIBUTIONS = {"pytest", "mypy", "ruff", "grpcio-tools", "uv", "httpx", "pip"}


def dockerfile_path(component: str) -> Path:
    """Where a deployable's Dockerfile lives (the path CI and compose build with)."""
    return ROOT / source_dir(component) / "Dockerfile"


def source_dir(component: str) -> str:
    """The workspace directory of a deployable, relative to the repository root."""
    return "gateway" if component == "gateway" else f"services/{component}"


def settings_class(component: str) -> type[BaseSettings]:
    """The component's settings class, whose defaults the images must agree with."""
    module = importlib.import_module(f"taskmesh_{component}.settings")
    cls: type[BaseSettings] = getattr(module, f"{component.capitalize()}Settings")
    return cls


def default(component: str, field_name: str) -> Any:
    """A settings field's default value."""
    return settings_class(component).model_fields[field_name].default


def listening_ports(component: str) -> list[int]:
    """The ports the component listens on by default: HTTP, or gRPC and metrics."""
    if component == "gateway":
        return [default("gateway", "gateway_port")]
    return [default(component, "grpc_port"), default(component, "metrics_port")]


# --- A Dockerfile parser (the subset of the syntax these files use) -------------------------


@dataclass(frozen=True)
class Instruction:
    """One instruction, its `--flag=value` options split from its arguments."""

    keyword: str
    flags: tuple[tuple[str, str], ...]
    arguments: str
    line: int

    def flag(self, name: str) -> str | None:
        """The value of a `--name=value` option, if given."""
        return next((value for key, value in self.flags if key == name), None)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        assert isinstance(parsed, list), f"line {self.line}: not a JSON array"
        assert all(isinstance(item, str) for item in parsed), f"line {self.line}"
        return parsed

    def pairs(self) -> dict[str, str]:
        """The `KEY=value` pairs of an ENV, LABEL or ARG instruction."""
        result = {}
        for word in shlex.split(self.arguments):
            key, equals, value = word.partition("=")
            assert equals, f"line {self.line}: {word!r} is not KEY=value"
            result[key] = value
        return result


@dataclass
class Stage:
    """A build stage: its base image, its name and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        """The stage's instructions with that keyword."""
        return [item for item in self.instructions if item.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        """The stage's only instruction with that keyword."""
        (item,) = self.of(keyword)
        return item

    def env(self) -> dict[str, str]:
        """Every variable the stage's ENV instructions set."""
        result: dict[str, str] = {}
        for item in self.of("ENV"):
            result |= item.pairs()
        return result


@dataclass
class Dockerfile:
    """A parsed Dockerfile: parser directives, global ARGs and stages."""

    directives: list[str]
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        """The stage of that name."""
        return next(stage for stage in self.stages if stage.name == name)


_FLAG = re.compile(r"--([a-z-]+)=(\S+)\s+")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Comment-free instructions with their line continuations joined."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(part for part in pending if part)))
        pending = []
    assert not pending, "the file ends in a line continuation"
    return lines


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse the Dockerfile syntax these files use into stages of instructions."""
    directives = []
    for raw in text.splitlines():
        if not re.match(r"^#\s*\w+=", raw):
            break
        directives.append(raw.strip())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags = []
        while match := _FLAG.match(rest):
            flags.append((match.group(1), match.group(2)))
            rest = rest[match.end() :]
        instruction = Instruction(keyword, tuple(flags), rest.strip(), number)
        if keyword == "FROM":
            words = rest.split()
            base = _VARIABLE.sub(
                lambda m, known=global_args: known[m.group(1) or m.group(2)], words[0]
            )
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {number}: FROM <image> [AS <name>]"
            stages.append(Stage(base, name))
        elif not stages:
            assert keyword == "ARG", f"line {number}: only ARG may come before FROM"
            global_args |= instruction.pairs()
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(directives, global_args, stages)


@cache
def dockerfile(component: str) -> Dockerfile:
    """The component's parsed Dockerfile."""
    return parse_dockerfile(dockerfile_path(component).read_text())


def test_the_parser_joins_continuations_skips_comments_and_splits_flags() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.11.9-slim-bookworm\n"
        "FROM ${BASE} AS builder\n"
        "RUN --mount=type=cache,target=/root/.cache/uv \\\n"
        "    # a comment inside the continuation\n"
        "    uv sync \\\n"
        "    --frozen\n"
        'ENV A=1 \\\n    B="two words"\n'
        "FROM ${BASE}\n"
        'CMD ["python", "-m", "x"]\n'
    )

    assert parsed.directives == ["# syntax=docker/dockerfile:1"]
    builder, final = parsed.stages
    assert (builder.base, builder.name, final.name) == (
        "python:3.11.9-slim-bookworm",
        "builder",
        None,
    )
    run = builder.one("RUN")
    assert run.flag("mount") == "type=cache,target=/root/.cache/uv"
    assert run.arguments == "uv sync --frozen"
    assert builder.env() == {"A": "1", "B": "two words"}
    assert final.one("CMD").exec_form() == ["python", "-m", "x"]
    assert Instruction("CMD", (), "python -m x", 1).exec_form() is None


# --- Every image follows the rules ----------------------------------------------------------


@pytest.fixture(params=DEPLOYABLES)
def component(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_every_deployable_has_its_dockerfile_with_a_builder_and_a_runtime_stage(
    component: str,
) -> None:
    parsed = dockerfile(component)

    assert parsed.directives == [SYNTAX_DIRECTIVE]
    assert [stage.name for stage in parsed.stages] == ["builder", "runtime"]


def test_both_stages_use_one_pinned_slim_python_base(component: str) -> None:
    builder, runtime = dockerfile(component).stages

    assert BASE_IMAGE.match(runtime.base), runtime.base
    # The virtualenv's interpreter links are only valid on the base it was built on.
    assert builder.base == runtime.base
    assert {dockerfile(other).stages[1].base for other in DEPLOYABLES} == {runtime.base}


def test_the_builder_installs_the_makefile_uv_and_syncs_only_the_component_frozen(
    component: str,
) -> None:
    builder = dockerfile(component).stage("builder")
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile_uv

    (install_uv, *runs) = builder.of("RUN")
    assert shlex.split(install_uv.arguments)[-1] == f"uv=={makefile_uv.group(1)}"
    syncs = [shlex.split(run.arguments) for run in runs if run.arguments.startswith("uv sync")]
    assert len(syncs) == 2
    for sync in syncs:
        assert {"--frozen", "--no-dev"} <= set(sync)
        assert sync[sync.index("--package") + 1] == f"taskmesh-{component}"
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]
    assert builder.env()["UV_PROJECT_ENVIRONMENT"] == VENV


def test_the_builder_copies_the_lock_and_exactly_the_component_workspace_closure(
    component: str,
) -> None:
    builder = dockerfile(component).stage("builder")
    sources = set()
    for copy in builder.of("COPY"):
        assert copy.flag("from") is None
        sources |= set(copy.arguments.split()[:-1])

    expected = {"uv.lock", "pyproject.toml"} | {
        f"{directory}/" for directory in workspace_closure(source_dir(component))
    }
    assert sources == expected


def test_the_runtime_stage_holds_the_virtualenv_and_no_build_tools(component: str) -> None:
    runtime = dockerfile(component).stage("runtime")

    (copy,) = runtime.of("COPY")
    assert copy.flag("from") == "builder"
    assert copy.arguments.split() == [VENV, VENV]
    (create_user,) = runtime.of("RUN")
    assert create_user.arguments.startswith("groupadd --system --gid 10001 taskmesh")
    assert "apt-get" not in create_user.arguments
    assert "pip" not in create_user.arguments
    assert runtime.env()["PATH"].startswith(f"{VENV}/bin:")


def test_the_runtime_runs_as_a_numeric_non_root_user(component: str) -> None:
    runtime = dockerfile(component).stage("runtime")

    assert runtime.one("USER").arguments == RUNTIME_USER
    useradd = shlex.split(runtime.one("RUN").arguments.split("&&")[1])
    assert useradd[useradd.index("--uid") + 1] == RUNTIME_USER.split(":")[0]


def test_the_command_is_exec_form_python_and_receives_sigterm(component: str) -> None:
    runtime = dockerfile(component).stage("runtime")

    assert runtime.one("CMD").exec_form() == ["python", "-m", f"taskmesh_{component}"]
    assert runtime.of("ENTRYPOINT") == []
    assert runtime.one("STOPSIGNAL").arguments == "SIGTERM"
    assert importlib.util.find_spec(f"taskmesh_{component}.__main__") is not None


def test_the_healthcheck_asks_the_component_itself(component: str) -> None:
    healthcheck = dockerfile(component).stage("runtime").one("HEALTHCHECK")
    command = healthcheck.arguments.removeprefix("CMD ").strip()

    assert healthcheck.arguments.startswith("CMD ")
    assert json.loads(command) == image_healthcheck(component)
    for option in ("interval", "timeout", "start-period", "retries"):
        assert healthcheck.flag(option), option


def image_healthcheck(component: str) -> list[str]:
    """The HEALTHCHECK command an image must have (and compose repeats)."""
    command = ["python", "-m", "taskmesh_chassis.healthcheck"]
    if component == "gateway":
        command += ["--http", "/healthz", "--host-variable", "GATEWAY_HOST"]
        command += ["--port-variable", "GATEWAY_PORT"]
    return command


def test_exposed_ports_and_listening_environment_are_the_code_defaults(component: str) -> None:
    runtime = dockerfile(component).stage("runtime")
    env = runtime.env()

    exposed = [int(port) for port in runtime.one("EXPOSE").arguments.split()]
    assert exposed == listening_ports(component)
    assert env["ENVIRONMENT"] == "production"
    if component == "gateway":
        assert env["GATEWAY_HOST"] == "0.0.0.0"
        assert int(env["GATEWAY_PORT"]) == default("gateway", "gateway_port")
    else:
        assert env["GRPC_HOST"] == "0.0.0.0"
        assert int(env["GRPC_PORT"]) == default(component, "grpc_port")
        assert int(env["METRICS_PORT"]) == default(component, "metrics_port")
    for name in env:
        settings_field = name.lower()
        if name in ("PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"):
            continue
        assert settings_field in settings_class(component).model_fields, name


def test_no_secret_and_no_remote_file_goes_into_an_image(component: str) -> None:
    parsed = dockerfile(component)
    text = dockerfile_path(component).read_text()

    assert not re.search(r"^\s*ADD\s", text, re.MULTILINE | re.IGNORECASE)
    names = set(parsed.global_args)
    for stage in parsed.stages:
        names |= set(stage.env())
        for arg in stage.of("ARG"):
            names |= set(arg.pairs())
    assert not [name for name in names if SECRET_NAME.search(name)]
    for stage in parsed.stages:
        for run in stage.of("RUN"):
            assert (run.flag("mount") or "").find("type=secret") == -1
            assert not re.search(r"https?://", run.arguments), run.arguments


def _normalised(component: str) -> str:
    text = dockerfile_path(component).read_text()
    for prefix in ("taskmesh-", "taskmesh_", "ghcr.io/taskmesh/"):
        text = text.replace(f"{prefix}{component}", f"{prefix}<name>")
    text = text.replace(source_dir(component), "<dir>").replace(component, "<name>")
    for port in listening_ports(component):
        text = text.replace(str(port), "<port>")
    return text


def test_the_service_dockerfiles_differ_only_in_name_and_ports() -> None:
    texts = {service: _normalised(service) for service in SERVICES}

    assert len(set(texts.values())) == 1, "a change to one service's Dockerfile goes to all five"


def test_the_gateway_builds_like_the_services_and_differs_in_what_it_serves() -> None:
    def shared_part(component: str) -> list[tuple[str, str]]:
        parsed = parse_dockerfile(_normalised(component))
        builder, runtime = parsed.stages
        shared = builder.instructions + runtime.instructions
        return [(item.keyword, item.arguments) for item in shared if item.keyword != "LABEL"][
            : len(builder.instructions) + 3
        ]

    assert shared_part("gateway") == shared_part(SERVICES[0])


# --- The build context ----------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    """The .dockerignore patterns, comments and blank lines left out."""
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex on relative paths."""
    pattern = pattern.strip("/")
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            regex += ".*"
            index += 2
        elif pattern[index] == "*":
            regex += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            regex += "[^/]"
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            regex += pattern[index : end + 1]
            index = end + 1
        else:
            regex += re.escape(pattern[index])
            index += 1
    return re.compile(regex + "$")


def is_ignored(relative: str, patterns: list[str]) -> bool:
    """Whether the build context leaves out this path (or a directory above it)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!"))
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def context_files() -> list[str]:
    """Every file of the build context, relative to the repository root."""
    patterns = dockerignore_patterns()
    files = []
    for directory, subdirectories, names in os.walk(ROOT):
        relative_dir = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative_dir == "." else f"{relative_dir}/"
        subdirectories[:] = [
            name for name in subdirectories if not is_ignored(prefix + name, patterns)
        ]
        files += [prefix + name for name in names if not is_ignored(prefix + name, patterns)]
    return files


def test_the_dockerignore_matcher_follows_docker_semantics() -> None:
    patterns = ["**/__pycache__", "protos/gen", "*.md", "!README.md"]

    assert is_ignored("libs/chassis/src/x/__pycache__/a.pyc", patterns)
    assert is_ignored("protos/gen/python/taskmesh/__init__.py", patterns)
    assert not is_ignored("protos/generate.py", patterns)
    assert is_ignored("NOTES.md", patterns)
    assert not is_ignored("README.md", patterns)
    assert not is_ignored("docs/NOTES.md", patterns)


def test_the_context_keeps_out_local_state_generated_code_and_secrets() -> None:
    patterns = dockerignore_patterns()

    for path in (
        ".git/config",
        ".venv/bin/python",
        ".tools/bin/uv",
        ".data/mongo/x",
        "protos/gen/python/taskmesh/__init__.py",
        "compose/secrets/jwt_signing_key.pem",
        "compose/.env",
        "services/tasks/.env",
        "services/tasks/tests/test_x.py",
        "libs/chassis/src/taskmesh_chassis/__pycache__/x.cpython-311.pyc",
        "web/node_modules/x/index.js",
        "web/dist/index.html",
    ):
        assert is_ignored(path, patterns), path


def test_everything_a_dockerfile_copies_is_in_the_context(component: str) -> None:
    files = context_files()

    for copy in dockerfile(component).stage("builder").of("COPY"):
        for source in copy.arguments.split()[:-1]:
            if source.endswith("/"):
                assert any(path.startswith(source) for path in files), source
            else:
                assert source in files, source


# --- The workspace ----------------------------------------------------------------------------


def _pyproject(directory: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / directory / "pyproject.toml").read_text())


@cache
def workspace_members() -> dict[str, str]:
    """Workspace package name -> its directory."""
    members = {}
    for pattern in _pyproject(".")["tool"]["uv"]["workspace"]["members"]:
        for path in sorted(ROOT.glob(pattern)):
            if (path / "pyproject.toml").is_file():
                directory = path.relative_to(ROOT).as_posix()
                members[_pyproject(directory)["project"]["name"]] = directory
    return members


def workspace_closure(directory: str) -> list[str]:
    """The directories of a member and of every workspace member it depends on."""
    members = workspace_members()
    found: list[str] = []
    pending = [directory]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        found.append(current)
        for requirement in _pyproject(current)["project"].get("dependencies", []):
            name = re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0]
            if name in members:
                pending.append(members[name])
    return found


# --- The compose file runs the images as they are built ---------------------------------------


def test_compose_builds_and_runs_each_image_as_its_dockerfile_says(component: str) -> None:
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"][component]

    assert service["build"] == {
        "context": "..",
        "dockerfile": f"{source_dir(component)}/Dockerfile",
    }
    assert service["image"] == f"${{REGISTRY:-ghcr.io/taskmesh}}/{component}:${{TAG:-dev}}"
    assert service["user"] == RUNTIME_USER
    assert service["healthcheck"]["test"] == ["CMD", *image_healthcheck(component)]


# --- The web image ---------------------------------------------------------------------------

WEB_DOCKERFILE = ROOT / "web" / "Dockerfile"
NGINX_CONFIG = ROOT / "web" / "nginx.conf"
NODE_IMAGE = re.compile(r"^node:(\d+)\.(\d+)\.\d+-alpine\d+\.\d+$")
NGINX_IMAGE = re.compile(r"^nginxinc/nginx-unprivileged:\d+\.\d+\.\d+-alpine\d+\.\d+$")
WEB_USER = "101:101"
"""The nginx-unprivileged image's user."""
WEB_PORT = 8080
WEB_HEALTHCHECK = ["wget", "-q", "--spider", f"http://127.0.0.1:{WEB_PORT}/"]


@cache
def web_dockerfile() -> Dockerfile:
    """web/Dockerfile, parsed."""
    return parse_dockerfile(WEB_DOCKERFILE.read_text())


def test_the_web_image_pins_node_to_build_and_an_unprivileged_nginx_to_serve() -> None:
    parsed = web_dockerfile()
    builder, runtime = parsed.stages

    assert parsed.directives == [SYNTAX_DIRECTIVE]
    assert (builder.name, runtime.name) == ("builder", "runtime")
    node = NODE_IMAGE.match(builder.base)
    assert node, builder.base
    assert NGINX_IMAGE.match(runtime.base), runtime.base
    engines = json.loads((ROOT / "web" / "package.json").read_text())["engines"]["node"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", engines)
    assert minimum, engines
    assert (int(node.group(1)), int(node.group(2))) >= (
        int(minimum.group(1)),
        int(minimum.group(2)),
    )


def test_the_web_build_installs_the_committed_lock_before_copying_the_sources() -> None:
    builder = web_dockerfile().stage("builder")

    steps = [(item.keyword, item.arguments) for item in builder.instructions]
    assert steps == [
        ("WORKDIR", "/web"),
        ("COPY", "web/package.json web/package-lock.json ./"),
        ("RUN", "npm ci --no-audit --no-fund"),
        ("COPY", "web/ ./"),
        ("RUN", "npm run build"),
    ]
    assert builder.of("RUN")[0].flag("mount") == "type=cache,target=/root/.npm"


def test_the_web_runtime_is_nginx_with_the_build_as_a_numeric_non_root_user() -> None:
    runtime = web_dockerfile().stage("runtime")

    assert runtime.of("RUN") == []
    copies = {tuple(copy.arguments.split()): copy.flag("from") for copy in runtime.of("COPY")}
    assert copies == {
        ("web/nginx.conf", "/etc/nginx/nginx.conf"): None,
        ("/web/dist", "/usr/share/nginx/html"): "builder",
    }
    assert runtime.one("USER").arguments == WEB_USER
    # nginx is PID 1 (no entrypoint script writing to the read-only root); SIGQUIT lets the
    # requests in flight finish.
    assert runtime.one("ENTRYPOINT").exec_form() == []
    assert runtime.one("CMD").exec_form() == ["nginx"]
    assert runtime.one("STOPSIGNAL").arguments == "SIGQUIT"
    assert [int(port) for port in runtime.one("EXPOSE").arguments.split()] == [WEB_PORT]
    healthcheck = runtime.one("HEALTHCHECK")
    assert json.loads(healthcheck.arguments.removeprefix("CMD ")) == WEB_HEALTHCHECK
    for option in ("interval", "timeout", "start-period", "retries"):
        assert healthcheck.flag(option), option


def test_no_secret_and_no_remote_file_goes_into_the_web_image() -> None:
    text = WEB_DOCKERFILE.read_text()

    assert not re.search(r"^\s*ADD\s", text, re.MULTILINE | re.IGNORECASE)
    for stage in web_dockerfile().stages:
        assert not [name for name in stage.env() if SECRET_NAME.search(name)]
        assert stage.of("ARG") == []
        for run in stage.of("RUN"):
            assert "type=secret" not in (run.flag("mount") or "")
            assert not re.search(r"https?://", run.arguments), run.arguments


def test_everything_the_web_dockerfile_copies_is_in_the_context() -> None:
    files = context_files()

    for stage in web_dockerfile().stages:
        for copy in stage.of("COPY"):
            if copy.flag("from") is not None:
                continue
            for source in copy.arguments.split()[:-1]:
                if source.endswith("/"):
                    assert any(path.startswith(source) for path in files), source
                else:
                    assert source in files, source
    assert not [path for path in files if path.startswith(("web/node_modules/", "web/dist/"))]


def nginx_directives(name: str) -> list[str]:
    """The values of every `name ...;` directive of web/nginx.conf (quoted `;` included)."""
    text = NGINX_CONFIG.read_text()
    pattern = rf'^\s*{name}\s+((?:"[^"]*"|[^;"])+);'
    return [value.strip() for value in re.findall(pattern, text, re.M)]


def test_nginx_listens_where_the_image_says_and_writes_only_under_tmp() -> None:
    assert nginx_directives("listen") == [str(WEB_PORT)]
    assert nginx_directives("root") == ["/usr/share/nginx/html"]
    assert nginx_directives("daemon") == ["off"]
    assert nginx_directives("user") == [], "the image's user runs nginx, not a directive"
    written = ["pid", *(f"{kind}_temp_path" for kind in ("client_body", "proxy", "fastcgi"))]
    written += ["uwsgi_temp_path", "scgi_temp_path"]
    for directive in written:
        (value,) = nginx_directives(directive)
        assert value.startswith("/tmp/"), directive


def test_nginx_sends_the_security_headers_of_the_local_server_on_every_answer() -> None:
    headers = {}
    for value in nginx_directives("add_header"):
        match = re.fullmatch(r'([\w-]+)\s+("[^"]*"|\S+)(\s+always)?', value)
        assert match, value
        name, header_value, always = match.groups()
        if name != "Cache-Control":
            assert always, f"{name}: also on errors"
            headers[name] = header_value.strip('"')

    assert headers == SECURITY_HEADERS


def test_compose_builds_and_runs_the_web_image_as_its_dockerfile_says() -> None:
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["web"]

    assert service["build"] == {"context": "..", "dockerfile": "web/Dockerfile"}
    assert service["image"] == "${REGISTRY:-ghcr.io/taskmesh}/web:${TAG:-dev}"
    assert service["user"] == WEB_USER
    assert service["healthcheck"]["test"] == ["CMD", *WEB_HEALTHCHECK]
    port = service["labels"]["traefik.http.services.web.loadBalancer.server.port"]
    assert int(port) == WEB_PORT


# --- The build recipe, run without Docker -----------------------------------------------------


def _in_filesystem(fs_root: Path, path: str) -> Path:
    return fs_root / path.lstrip("/")


def run_builder_stage(component: str, fs_root: Path) -> Path:
    """Run the builder stage's COPY and RUN instructions under `fs_root`; return the venv.

    Absolute paths of the stage (WORKDIR, ENV values) are taken under `fs_root`; the RUN that
    installs uv is replaced by the Makefile's uv in .tools/ (same version, checked above);
    `--mount` options (BuildKit caches) are left out.
    """
    builder = dockerfile(component).stage("builder")
    files = context_files()
    uv = ROOT / ".tools" / "bin" / "uv"
    assert uv.is_file(), "run `make setup` first: the pinned uv is in .tools/"
    # The machine's network settings (proxies, CA bundles) and uv cache stay; nothing that
    # would point uv at this checkout's own virtualenv does.
    env = {
        name: value
        for name, value in os.environ.items()
        if (name != "VIRTUAL_ENV" and not name.startswith(("UV_", "PYTHON")))
        or name == "UV_CACHE_DIR"
    }
    env["PATH"] = f"{uv.parent}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"
    env["UV_PYTHON"] = str(Path(sys.base_prefix) / "bin" / "python3")
    workdir = fs_root
    for instruction in builder.instructions:
        if instruction.keyword == "ENV":
            for name, value in instruction.pairs().items():
                env[name] = str(_in_filesystem(fs_root, value)) if value.startswith("/") else value
        elif instruction.keyword == "WORKDIR":
            workdir = _in_filesystem(fs_root, instruction.arguments)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            *sources, destination = instruction.arguments.split()
            target = workdir / destination
            for source in sources:
                chosen = [p for p in files if p == source or p.startswith(source.rstrip("/") + "/")]
                for path in chosen:
                    relative = path[len(source) :] if source.endswith("/") else Path(path).name
                    copied = target / relative if destination.endswith("/") else target
                    copied.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / path, copied)
        elif instruction.keyword == "RUN":
            if re.search(r"\bpip install\b.*\buv==", instruction.arguments):
                continue
            done = subprocess.run(
                ["/bin/sh", "-c", instruction.arguments],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"line {instruction.line}: {done.stderr[-3000:]}"
        else:
            raise AssertionError(f"line {instruction.line}: {instruction.keyword} not emulated")
    return Path(env["UV_PROJECT_ENVIRONMENT"])


def _run_in(venv: Path, code: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(venv / "bin")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.integration
def test_the_builder_stage_produces_a_virtualenv_that_runs_the_component(
    component: str, tmp_path: Path
) -> None:
    venv = run_builder_stage(component, tmp_path / "fs")

    _run_in(
        venv,
        f"import taskmesh_{component}.main; "
        "import taskmesh_chassis.healthcheck; "
        "from taskmesh.common.v1 import common_pb2",
    )
    listed = _run_in(
        venv,
        "import importlib.metadata as m, json; "
        "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))",
    )
    installed = {name.lower().replace("_", "-") for name in json.loads(listed)}
    workspace = set(workspace_members())
    expected_workspace = {
        name
        for name, directory in workspace_members().items()
        if directory in workspace_closure(source_dir(component))
    }
    assert installed & workspace == expected_workspace
    assert not installed & DEV_ONLY_DISTRIBUTIONS
    site_packages = next((venv / "lib").glob("python3.*/site-packages"))
    # Non-editable: the code is in the virtualenv, nothing points back at the build sources.
    assert not list(site_packages.glob("*.pth"))
    assert (site_packages / f"taskmesh_{component}" / "__main__.py").is_file()
