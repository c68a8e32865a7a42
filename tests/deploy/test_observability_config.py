"""compose/'s Prometheus and Grafana configuration is valid and names only metrics the code exports.

No server is started: the files are parsed, and every metric name a PromQL expression uses
(alert rules, dashboard panels, dashboard variables) is looked up among the names the source
tree declares through prometheus_client's constructors, plus the process/platform/GC
collectors every process registers and the series Prometheus itself adds (`up`). Removing or
renaming a metric in the code makes these tests fail until the dashboards and alerts follow.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from taskmesh_gateway.settings import GatewaySettings
from taskmesh_localrun.options import SERVICES
from taskmesh_localrun.ports import DEFAULT_METRICS_PORTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
PROMETHEUS_CONFIG = COMPOSE / "prometheus" / "prometheus.yml"
ALERT_RULES = COMPOSE / "prometheus" / "alerts.yml"
GRAFANA = COMPOSE / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
SOURCE_FILES = sorted(
    path
    for pattern in ("libs/*/src/**/*.py", "gateway/src/**/*.py", "services/*/src/**/*.py")
    for path in ROOT.glob(pattern)
)

DEPLOYABLES = ("gateway", *SERVICES)
GRAFANA_DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
"""Series Prometheus adds to every target itself."""

ISSUE_METRICS = frozenset(
    {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_client_handled_total",
        "grpc_client_handling_seconds_bucket",
        "taskmesh_outbox_backlog",
        "taskmesh_event_consumer_lag_seconds_bucket",
        "taskmesh_event_dead_letters_total",
        "taskmesh_cache_requests_total",
        "taskmesh_rate_limited_total",
        "taskmesh_websocket_connections",
        "taskmesh_request_records_total",
    }
)
"""What issue 8 asks the dashboards to show: RED per route and RPC, gRPC clients, outbox
backlog, consumer lag, dead letters, cache hits, rate-limit rejections, WebSockets and the
request records."""

DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = frozenset({"critical", "warning"})
GRAFANA_BUILTIN_VARIABLES = frozenset({"__rate_interval", "__interval", "__range"})

# --- The metric names the code exports ------------------------------------------------------

_SAMPLE_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}
"""The sample names prometheus_client exposes for a metric of each kind, as suffixes of its
name (a counter's name loses a trailing `_total` first)."""


@dataclass(frozen=True)
class DeclaredMetric:
    """A prometheus_client metric constructed in the source tree."""

    kind: str
    name: str
    where: str

    def sample_names(self) -> set[str]:
        """The names of the series Prometheus stores for it."""
        base = self.name.removesuffix("_total") if self.kind == "Counter" else self.name
        return {base + suffix for suffix in _SAMPLE_SUFFIXES[self.kind]}


def _prometheus_bindings(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Local names bound to prometheus_client metric classes, and aliases of the module."""
    classes: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
            for alias in node.names:
                if alias.name in _SAMPLE_SUFFIXES:
                    classes[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prometheus_client":
                    modules.add(alias.asname or alias.name)
    return classes, modules


def _literal(node: ast.expr | None, where: str) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise AssertionError(f"{where}: a metric name part is not a string literal; cannot check it")


def declared_metrics(source: str, filename: str) -> list[DeclaredMetric]:
    """The prometheus_client metrics a module constructs (collections.Counter is not one)."""
    tree = ast.parse(source, filename)
    classes, modules = _prometheus_bindings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in classes:
            kind = classes[func.id]
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
            and func.attr in _SAMPLE_SUFFIXES
        ):
            kind = func.attr
        else:
            continue
        where = f"{filename}:{node.lineno}"
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        name = _literal(node.args[0] if node.args else keywords.get("name"), where)
        assert name, f"{where}: {kind}(...) without a name"
        parts = [
            _literal(keywords.get("namespace"), where),
            _literal(keywords.get("subsystem"), where),
            name,
        ]
        full_name = "_".join(part for part in parts if part)
        unit = _literal(keywords.get("unit"), where)
        if unit and not full_name.endswith(f"_{unit}"):
            full_name = f"{full_name}_{unit}"
        found.append(DeclaredMetric(kind, full_name, where))
    return found


def _default_collector_series() -> set[str]:
    """Series of the collectors prometheus_client registers in every process's registry."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return {sample.name for family in registry.collect() for sample in family.samples}


def exported_series() -> set[str]:
    """Every series name a taskmesh process can expose, and Prometheus' own per target."""
    names = set(PROMETHEUS_SERIES) | _default_collector_series()
    for path in SOURCE_FILES:
        for metric in declared_metrics(path.read_text(), str(path.relative_to(ROOT))):
            names |= metric.sample_names()
    return names


# --- The metric names a PromQL expression uses ----------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.DOTALL)


def grafana_variables(expr: str) -> set[str]:
    """The Grafana variables (`$route`, `${route}`) an expression uses."""
    return {braced or bare for braced, bare in _VARIABLE.findall(_STRING.sub('""', expr))}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana `label_values(...)` query) reads.

    Strings, label matchers, ranges, grouping label lists and Grafana variables are removed
    first; what remains that is an identifier not followed by `(` and not a keyword is a
    metric name.
    """
    label_values = _LABEL_VALUES.match(expr)
    if label_values:
        expr = label_values.group(1)
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def is_balanced(expr: str) -> bool:
    """Whether the brackets of an expression (outside strings) pair up."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in _STRING.sub('""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


# --- The files ------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def dashboard_panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target and every query variable of a dashboard."""
    for panel in dashboard_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']!r}",
                query["query"] if isinstance(query, dict) else query,
            )


def all_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and every dashboard query."""
    queries = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        queries += [(f"{path.name} {where}", expr) for where, expr in dashboard_queries(dashboard)]
    return queries


def provisioned_datasource_uid() -> str:
    """The uid of the one provisioned Prometheus datasource."""
    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    uid: str = datasource["uid"]
    return uid


# --- Tests: the helpers themselves ----------------------------------------------------------


def test_metric_names_ignore_functions_labels_ranges_and_variables() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (route, le) "
        '(rate(http_request_duration_seconds_bucket{route!="(unmatched)",x=~"$route"}'
        "[$__rate_interval] offset 5m))) > 1e-3 and on (route) "
        "(sum without (instance) (up) > bool 0.05) or vector(1)"
    )

    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "up"}
    assert metric_names("label_values(http_requests_total{a='b'}, route)") == {
        "http_requests_total"
    }


def test_declared_metrics_get_prometheus_client_sample_names() -> None:
    source = (
        "import collections\n"
        "import prometheus_client as pc\n"
        "from prometheus_client import Counter, Histogram as H\n"
        "a = Counter('jobs_total', 'd')\n"
        "b = H('wait_seconds', 'd', ['x'])\n"
        "c = pc.Gauge('depth', 'd', namespace='taskmesh')\n"
        "d = collections.Counter('not a metric')\n"
    )

    names = set().union(*(m.sample_names() for m in declared_metrics(source, "m.py")))

    assert names == {
        "jobs_total",
        "jobs_created",
        "wait_seconds_bucket",
        "wait_seconds_sum",
        "wait_seconds_count",
        "wait_seconds_created",
        "taskmesh_depth",
    }


def test_a_metric_name_that_is_not_a_literal_cannot_be_checked() -> None:
    source = "from prometheus_client import Gauge\nNAME = 'x'\ng = Gauge(NAME, 'd')\n"

    with pytest.raises(AssertionError, match="not a string literal"):
        declared_metrics(source, "m.py")


def test_the_source_scan_finds_the_known_metrics() -> None:
    exported = exported_series()

    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "grpc_server_handled_total",
        "taskmesh_outbox_backlog",
        "process_resident_memory_bytes",
    } <= exported


# --- Tests: Prometheus ----------------------------------------------------------------------


def test_prometheus_config_scrapes_every_deployable_on_its_default_port() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    assert len(jobs) == len(config["scrape_configs"]), "job names must be unique"
    assert set(DEPLOYABLES) | {"traefik"} <= set(jobs)
    (gateway_sd,) = jobs["gateway"]["dns_sd_configs"]
    assert gateway_sd["names"] == ["gateway"]
    assert gateway_sd["type"] == "A"
    assert gateway_sd["port"] == GatewaySettings.model_fields["gateway_port"].default
    for service in SERVICES:
        settings_class = getattr(
            importlib.import_module(f"taskmesh_{service}.settings"),
            f"{service.capitalize()}Settings",
        )
        port = settings_class.model_fields["metrics_port"].default
        assert port == DEFAULT_METRICS_PORTS[service]
        assert jobs[service]["static_configs"] == [{"targets": [f"{service}:{port}"]}]


def test_prometheus_config_durations_and_rule_files() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)

    for key in ("scrape_interval", "scrape_timeout", "evaluation_interval"):
        assert DURATION.match(config["global"][key]), key
    assert config["rule_files"] == ["alerts.yml"]
    assert (PROMETHEUS_CONFIG.parent / config["rule_files"][0]).is_file()


def test_every_alert_rule_is_complete() -> None:
    groups = load_yaml(ALERT_RULES)["groups"]
    rules = alert_rules()

    assert len({group["name"] for group in groups}) == len(groups)
    assert len({rule["alert"] for rule in rules}) == len(rules), "alert names must be unique"
    for rule in rules:
        name = rule.get("alert")
        assert isinstance(name, str), rule
        assert name, rule
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert isinstance(rule["expr"], str), name
        assert rule["expr"].strip(), name
        assert is_balanced(rule["expr"]), name
        assert DURATION.match(rule["for"]), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        for text in rule["annotations"].values():
            assert text.count("{{") == text.count("}}"), name


def _compact(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_alert_rules_hold_the_service_level_targets() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}

    latency = _compact(rules["GatewayRouteLatencyP95High"]["expr"])
    assert "histogram_quantile(0.95,sumby(route,le)(rate(http_request_duration_seconds_bucket" in (
        latency
    )
    assert ">0.2)" in latency
    errors = _compact(rules["GatewayErrorRateHigh"]["expr"])
    assert errors == (
        'sum(rate(http_requests_total{status=~"5.."}[5m]))/sum(rate(http_requests_total[5m]))>0.001'
    )
    for name in ("GatewayRouteLatencyP95High", "GatewayErrorRateHigh"):
        assert rules[name]["labels"]["severity"] == "critical"
        assert rules[name]["for"] == "5m"


# --- Tests: Grafana -------------------------------------------------------------------------


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    datasources = load_yaml(DATASOURCES)
    providers = load_yaml(DASHBOARD_PROVIDERS)

    assert datasources["apiVersion"] == 1
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS_MOUNT


def test_dashboards_are_valid_grafana_json() -> None:
    uid = provisioned_datasource_uid()
    assert DASHBOARDS, "no dashboard in compose/grafana/dashboards"
    dashboard_uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] not in dashboard_uids, path.name
        dashboard_uids.add(dashboard["uid"])
        assert dashboard["title"], path.name
        assert isinstance(dashboard["schemaVersion"], int), path.name
        assert dashboard["schemaVersion"] >= 36, path.name
        defined = {variable["name"] for variable in dashboard["templating"]["list"]}
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == uid, variable["name"]
        panels = list(dashboard_panels(dashboard["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(set(ids)) == len(ids), f"{path.name}: panel ids must be unique"
        occupied: set[tuple[int, int]] = set()
        for panel in panels:
            where = f"{path.name} panel {panel.get('title')!r}"
            grid = panel["gridPos"]
            assert grid["x"] >= 0, where
            assert grid["w"] > 0, where
            assert grid["x"] + grid["w"] <= 24, where
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & occupied, f"{where} overlaps another panel"
            occupied |= cells
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, where
            targets = panel["targets"]
            assert targets, where
            assert len({target["refId"] for target in targets}) == len(targets), where
            for target in targets:
                assert target["datasource"]["uid"] == uid, where
                assert is_balanced(target["expr"]), where
                unknown = grafana_variables(target["expr"]) - defined - GRAFANA_BUILTIN_VARIABLES
                assert not unknown, f"{where} uses undefined variables {unknown}"


# --- Tests: the metric names ----------------------------------------------------------------


def test_every_query_names_only_metrics_the_code_exports() -> None:
    exported = exported_series()
    unknown = []
    for where, expr in all_queries():
        names = metric_names(expr)
        assert names, f"{where} reads no metric: {expr}"
        unknown += [f"{where}: {name}" for name in sorted(names - exported)]

    assert not unknown, "metrics no code exports:\n" + "\n".join(unknown)


def test_dashboards_show_what_the_issue_asks_for() -> None:
    shown = set()
    for path in DASHBOARDS:
        for _, expr in dashboard_queries(json.loads(path.read_text())):
            shown |= metric_names(expr)

    assert sorted(ISSUE_METRICS - shown) == []
