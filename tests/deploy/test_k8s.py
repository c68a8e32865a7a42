"""k8s/: every overlay renders, validates strictly, and keeps what no schema can check.

No cluster is involved. `kubectl kustomize` renders each overlay and `kubernetes-validate
--strict` checks every object against the schemas of Kubernetes 1.34 and 1.37 (only built-in
kinds are used, so nothing is left unvalidated). The rendered objects are then read:

- every workload has readiness and liveness probes, CPU and memory requests and limits, the
  `restricted` pod security context and a PodDisruptionBudget;
- each taskmesh Deployment rolls with `maxUnavailable: 0`, sleeps in `preStop` for less than
  its grace period minus SHUTDOWN_GRACE_S, is scaled by an autoscaling/v2 HPA on CPU;
- ports, probes, gRPC targets and image names agree with the settings classes' defaults and
  with compose/compose.yaml; the dev overlay's environment is accepted by each settings class
  as it stands (ENVIRONMENT=production refuses placeholder secrets);
- a small NetworkPolicy evaluator answers who can open a connection to whom: the gateway to
  every service port it calls, Traefik to the gateway and the web app only, Prometheus to the
  metrics ports only, each component to exactly its own data stores, the web app to nothing,
  nothing else to anything;
- the Ingress sends the API's paths to the gateway and every other path to the web app, whose
  Deployment runs the image, user and port compose runs.
"""

from __future__ import annotations

import base64
import functools
import importlib
import ipaddress
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings
from taskmesh_auth.tokens import load_key_store
from taskmesh_localrun.options import SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
PROD_README = K8S / "overlays" / "prod" / "README.md"
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"

KUBERNETES_VERSIONS = ("1.34.0", "1.37.0")
"""The schemas every object is validated against: a release every current managed offering
runs, and the newest kubernetes-validate ships."""

NAMESPACE = "taskmesh"
DEPLOYABLES = ("gateway", *SERVICES)
"""The Python components (`app.kubernetes.io/component: backend`)."""
WEB = "web"
"""The web app: nginx over its static build (`app.kubernetes.io/component: frontend`)."""
WEB_PORT = 8080
GATEWAY_PATHS = {"/api", "/.well-known", "/docs", "/healthz", "/readyz"}
"""What the Ingress sends to the gateway: never /metrics."""
IMAGE_REPOSITORY = "ghcr.io/taskmesh"
RUNTIME_UID = 10001
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
LONG_RUNNING_KINDS = ("Deployment", "StatefulSet")

CALLERS = {
    "auth": {"gateway", "users", "tasks", "notifications", "analytics"},
    "users": {"gateway", "auth"},
    "tasks": {"gateway"},
    "notifications": {"gateway"},
    "analytics": {"gateway"},
}
"""Who calls each service's gRPC port, from the composition roots: the gateway calls all;
every service fetches auth's JWKS (users and tasks also ask auth about accounts); auth
creates a registering user's profile in users."""
DEV_EXTRA_CALLERS = {"tasks": {"auth"}, "notifications": {"auth"}, "analytics": {"auth"}}
"""Dev's auth waits, with gRPC health checks, for the services that consume its events."""

DATASTORE_PORTS = {"mongodb": 27017, "redis": 6379, "rabbitmq": 5672, "mailpit": 1025}
DATASTORES_USED = {
    "gateway": {"redis", "rabbitmq"},
    "auth": {"mongodb", "redis", "rabbitmq"},
    "users": {"mongodb", "rabbitmq"},
    "tasks": {"mongodb", "redis", "rabbitmq"},
    "notifications": {"mongodb", "rabbitmq", "mailpit"},
    "analytics": {"mongodb", "rabbitmq"},
    "mongodb-init": {"mongodb"},
}
"""Which data store each component opens connections to (its composition root): Redis for the
gateway's caches, auth's revocations and tasks' cache invalidation; RabbitMQ for every
component; MongoDB for every service; SMTP (Mailpit in dev) for notifications."""
PROD_DATASTORE_PORTS = {"mongodb": {27017}, "redis": {6379, 6380}, "rabbitmq": {5671, 5672}}
SMTP_PORTS = {25, 465, 587}

PROD_SECRETS = {
    "gateway-secrets": {"REDIS_URL", "AMQP_URL"},
    "auth-secrets": {"MONGODB_URL", "REDIS_URL", "AMQP_URL"},
    "auth-jwt-signing-key": {"jwt_signing_key"},
    "auth-bootstrap-admin": {"BOOTSTRAP_ADMIN_EMAIL", "BOOTSTRAP_ADMIN_PASSWORD"},
    "users-secrets": {"MONGODB_URL", "AMQP_URL"},
    "tasks-secrets": {"MONGODB_URL", "REDIS_URL", "AMQP_URL"},
    "notifications-secrets": {"MONGODB_URL", "AMQP_URL", "SMTP_URL"},
    "analytics-secrets": {"MONGODB_URL", "AMQP_URL"},
}
"""The Secrets the prod overlay expects to exist (k8s/overlays/prod/README.md)."""
OPTIONAL_SECRETS = {"auth-bootstrap-admin"}

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
"""The volume types the `restricted` Pod Security Standard allows."""


# --- Rendering ------------------------------------------------------------------------------


def kubectl() -> str:
    """The kubectl that renders the overlays (its built-in kustomize)."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not on PATH: it renders the kustomize overlays")
    return path


@functools.cache
def rendered_text(overlay: str) -> str:
    """`kubectl kustomize k8s/overlays/<overlay>`."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kustomize {overlay} failed:\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Rendered:
    """The objects an overlay renders to, with lookups by kind and name."""

    overlay: str
    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of that kind."""
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        """The object of that kind and exact name."""
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def generated(self, kind: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap or Secret a generator named `name` made (its name has a hash)."""
        pattern = re.compile(rf"{re.escape(name)}(-[a-z0-9]{{10}})?")
        found = [obj for obj in self.of_kind(kind) if pattern.fullmatch(obj["metadata"]["name"])]
        assert len(found) <= 1, f"{self.overlay}: several {kind}s named {name}"
        return found[0] if found else None

    def backend(self) -> dict[str, dict[str, Any]]:
        """The taskmesh Deployments, by component name."""
        return {
            deployment["metadata"]["name"]: deployment
            for deployment in self.of_kind("Deployment")
            if deployment["metadata"]["labels"].get("app.kubernetes.io/component") == "backend"
        }

    def workloads(self, kinds: tuple[str, ...] = WORKLOAD_KINDS) -> list[dict[str, Any]]:
        """Every object of those kinds (they all have a pod template)."""
        return [obj for obj in self.objects if obj["kind"] in kinds]


@functools.cache
def render(overlay: str) -> Rendered:
    """The overlay's objects, parsed."""
    documents = yaml.safe_load_all(rendered_text(overlay))
    return Rendered(overlay, tuple(doc for doc in documents if doc))


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    """A workload's pod spec."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def all_containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Its init containers and containers."""
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """The container named after the component."""
    name = deployment["metadata"]["name"]
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    return container


def workload_id(workload: Mapping[str, Any]) -> str:
    """`Kind/name`, for messages."""
    return f"{workload['kind']}/{workload['metadata']['name']}"


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects these labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


# --- Settings -------------------------------------------------------------------------------


def settings_class(component: str) -> type[BaseSettings]:
    """The component's settings class (AuthSettings, GatewaySettings, ...)."""
    module = importlib.import_module(f"taskmesh_{component}.settings")
    cls: type[BaseSettings] = getattr(module, f"{component.capitalize()}Settings")
    return cls


def default(component: str, field_name: str) -> Any:
    """A settings field's default."""
    return settings_class(component).model_fields[field_name].default


def grpc_port(service: str) -> int:
    """A service's default GRPC_PORT."""
    port: int = default(service, "grpc_port")
    return port


def metrics_port(service: str) -> int:
    """A service's default METRICS_PORT."""
    port: int = default(service, "metrics_port")
    return port


def gateway_port() -> int:
    """The gateway's default GATEWAY_PORT."""
    port: int = default("gateway", "gateway_port")
    return port


def target_fields(component: str) -> dict[str, str]:
    """The `<service>_grpc_target` fields of a settings class, by the service they name."""
    return {
        name.removesuffix("_grpc_target"): name
        for name in settings_class(component).model_fields
        if name.endswith("_grpc_target")
    }


# --- The environment a container gets -------------------------------------------------------


@dataclass(frozen=True)
class SecretValue:
    """A variable taken from a Secret: its value when the overlay renders the Secret."""

    secret: str
    key: str
    optional: bool
    value: str | None


def decoded(secret: Mapping[str, Any], key: str) -> str | None:
    """A Secret's value for `key`, decoded; None when it has no such key."""
    if key in secret.get("stringData", {}):
        value: str = secret["stringData"][key]
        return value
    if key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    return None


def container_environment(
    rendered: Rendered, container: Mapping[str, Any]
) -> dict[str, str | SecretValue]:
    """The variables the container starts with (envFrom, then env), from the render."""
    environment: dict[str, str | SecretValue] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"{container['name']}: envFrom {source}"
        config_map = rendered.named("ConfigMap", source["configMapRef"]["name"])
        environment.update(config_map["data"])
    for variable in container.get("env", []):
        name = variable["name"]
        if "value" in variable:
            environment[name] = variable["value"]
            continue
        reference = variable["valueFrom"]
        if "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            environment[name] = rendered.named("ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            ref = reference["secretKeyRef"]
            secrets = [
                s for s in rendered.of_kind("Secret") if s["metadata"]["name"] == ref["name"]
            ]
            value = decoded(secrets[0], ref["key"]) if secrets else None
            environment[name] = SecretValue(
                ref["name"], ref["key"], ref.get("optional", False), value
            )
    return environment


def plain(environment: Mapping[str, str | SecretValue], name: str) -> str | None:
    """A variable that is not a secret, or None when unset."""
    value = environment.get(name)
    assert not isinstance(value, SecretValue), f"{name} should not come from a Secret"
    return value


# --- A NetworkPolicy evaluator --------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace and labels) or an address outside the cluster."""

    name: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    named_ports: Mapping[str, int] = field(default_factory=dict)


TRAEFIK = Endpoint("traefik", "traefik", {"app.kubernetes.io/name": "traefik"})
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
KUBE_DNS = Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"})
STRANGER = Endpoint("a pod in namespace default", "default", {"app": "shell"})
INTERNET_HOST = Endpoint("an internet host", None, ip="203.0.113.7")
OUTSIDERS = (TRAEFIK, PROMETHEUS, STRANGER)


def pods(rendered: Rendered) -> dict[str, Endpoint]:
    """Each workload's pods as an endpoint, by its `app.kubernetes.io/name`."""
    found = {}
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        name = labels["app.kubernetes.io/name"]
        named_ports = {
            port["name"]: port["containerPort"]
            for container in all_containers(workload)
            for port in container.get("ports", [])
            if "name" in port
        }
        found[name] = Endpoint(name, NAMESPACE, labels, named_ports=named_ports)
    return found


def _peer_matches(peer: Mapping[str, Any], endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        if endpoint.ip is None:
            return False
        address = ipaddress.ip_address(endpoint.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except", [])
        )
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": endpoint.namespace}
        if not selector_matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif endpoint.namespace != NAMESPACE:
        return False
    return selector_matches(peer.get("podSelector", {}), endpoint.labels)


def _port_matches(rule: Mapping[str, Any], port: int, protocol: str, target: Endpoint) -> bool:
    if not rule.get("ports"):
        return True
    for allowed in rule["ports"]:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        number = allowed.get("port")
        if number is None:
            return True
        if isinstance(number, str):
            number = target.named_ports.get(number)
        if number is not None and number <= port <= allowed.get("endPort", number):
            return True
    return False


def _policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    default_types = ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
    types: list[str] = spec.get("policyTypes", default_types)
    return types


def allowed(
    rendered: Rendered, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether `source` may open a connection to `target` on `port`, by the NetworkPolicies.

    Only the namespace's policies are known: pods elsewhere and outside addresses are taken
    to be unrestricted on their own side.
    """
    policies = rendered.of_kind("NetworkPolicy")
    if source.namespace == NAMESPACE:
        egress = [
            p
            for p in policies
            if "Egress" in _policy_types(p)
            and selector_matches(p["spec"]["podSelector"], source.labels)
        ]
        if egress and not any(
            (not rule.get("to") or any(_peer_matches(peer, target) for peer in rule["to"]))
            and _port_matches(rule, port, protocol, target)
            for policy in egress
            for rule in policy["spec"].get("egress", [])
        ):
            return False
    if target.namespace == NAMESPACE:
        ingress = [
            p
            for p in policies
            if "Ingress" in _policy_types(p)
            and selector_matches(p["spec"]["podSelector"], target.labels)
        ]
        if ingress and not any(
            (not rule.get("from") or any(_peer_matches(peer, source) for peer in rule["from"]))
            and _port_matches(rule, port, protocol, target)
            for policy in ingress
            for rule in policy["spec"].get("ingress", [])
        ):
            return False
    return True


def who_reaches(rendered: Rendered, target: Endpoint, port: int) -> set[str]:
    """The names of the namespace's pods and of the known outsiders that reach target:port."""
    sources = [*pods(rendered).values(), *OUTSIDERS]
    return {
        source.name
        for source in sources
        if source.name != target.name and allowed(rendered, source, target, port)
    }


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """Each overlay's objects, in turn."""
    overlay: str = request.param
    return render(overlay)


def expected_callers(overlay: str, service: str) -> set[str]:
    """Who may open connections to the service's gRPC port in this overlay."""
    extra = DEV_EXTRA_CALLERS.get(service, set()) if overlay == "dev" else set()
    return CALLERS[service] | extra


# --- Schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly(overlay: str, tmp_path: Path) -> None:
    manifests = tmp_path / f"{overlay}.yaml"
    manifests.write_text(rendered_text(overlay))
    command = [sys.executable, "-m", "kubernetes_validate", "--strict"]
    for version in KUBERNETES_VERSIONS:
        command += ["--kubernetes-version", version]
    result = subprocess.run(
        [*command, str(manifests)], capture_output=True, text=True, check=False, timeout=300
    )
    lines = result.stdout.splitlines()
    problems = [line for line in lines if not line.startswith("INFO ")]
    assert not problems, "\n".join(problems)
    assert result.returncode == 0, result.stderr
    # A kind without a schema is only warned about: every object must have passed instead.
    passed = [line for line in lines if " passed for resource " in line]
    assert len(passed) == len(render(overlay).objects) * len(KUBERNETES_VERSIONS)


def test_only_built_in_kinds_are_used(rendered: Rendered) -> None:
    custom = {
        f"{obj['apiVersion']} {obj['kind']}"
        for obj in rendered.objects
        if "." in obj["apiVersion"].split("/")[0]
        and not obj["apiVersion"].split("/")[0].endswith(".k8s.io")
    }
    assert not custom, f"custom resources cannot be validated strictly: {custom}"


def test_everything_is_in_the_restricted_namespace(rendered: Rendered) -> None:
    namespace = rendered.named("Namespace", NAMESPACE)
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    misplaced = [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in rendered.objects
        if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") != NAMESPACE
    ]
    assert not misplaced


# --- Workloads ------------------------------------------------------------------------------


def test_the_backend_deployments_are_the_deployables(rendered: Rendered) -> None:
    assert set(rendered.backend()) == set(DEPLOYABLES)


def test_every_pod_meets_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        where = workload_id(workload)
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        for host_field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host_field), f"{where}: {host_field}"
        for volume in spec.get("volumes", []):
            types = set(volume) - {"name"}
            assert types <= RESTRICTED_VOLUME_TYPES, f"{where}: volume {volume['name']}: {types}"
        assert spec.get("automountServiceAccountToken") is False, where
        for container in all_containers(workload):
            at = f"{where}, container {container['name']}"
            security = container.get("securityContext", {})
            merged = {**pod_security, **security}
            assert merged.get("runAsNonRoot") is True, at
            assert merged.get("runAsUser", 1) != 0, at
            assert merged.get("seccompProfile", {}).get("type") == "RuntimeDefault", at
            assert security.get("allowPrivilegeEscalation") is False, at
            assert not security.get("privileged"), at
            assert security.get("capabilities", {}).get("drop") == ["ALL"], at
            assert set(security.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}
            assert all("hostPort" not in port for port in container.get("ports", [])), at


def test_every_container_has_requests_and_limits(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        for container in all_containers(workload):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert set(resources.get(kind, {})) >= {"cpu", "memory"}, (
                    f"{workload_id(workload)}, container {container['name']}: {kind}"
                )


def test_every_long_running_workload_has_probes_and_a_pdb(rendered: Rendered) -> None:
    budgets = rendered.of_kind("PodDisruptionBudget")
    for workload in rendered.workloads(LONG_RUNNING_KINDS):
        where = workload_id(workload)
        for container in pod_spec(workload)["containers"]:
            assert "readinessProbe" in container, f"{where}: {container['name']}"
            assert "livenessProbe" in container, f"{where}: {container['name']}"
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selector_matches(b["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{where}: {len(covering)} PodDisruptionBudgets select it"
        budget = covering[0]["spec"]
        # One pod may always be evicted: a drain never waits forever, and with the HPA's
        # two replicas or more (prod) one stays up.
        assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable") == 1, where


def test_backend_deployments_roll_without_losing_capacity(rendered: Rendered) -> None:
    for name, deployment in rendered.backend().items():
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", name
        assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%"), name
        assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0%"), name
        # The HPA owns the replica count; a value here would reset it at every apply.
        assert "replicas" not in deployment["spec"], name


def test_backend_pods_drain_before_sigterm(rendered: Rendered) -> None:
    for name, deployment in rendered.backend().items():
        container = main_container(deployment)
        pre_stop = container["lifecycle"]["preStop"]
        assert set(pre_stop) == {"sleep"}, f"{name}: the kubelet's sleep needs nothing in the image"
        sleep_s = pre_stop["sleep"]["seconds"]
        assert sleep_s >= 3, f"{name}: endpoints need a few seconds to drop the pod"
        environment = container_environment(rendered, container)
        grace_s = float(plain(environment, "SHUTDOWN_GRACE_S") or default(name, "shutdown_grace_s"))
        termination_s = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert termination_s > sleep_s + grace_s, name


def test_backend_pods_run_as_the_image_user_on_a_read_only_root(rendered: Rendered) -> None:
    service_accounts = {sa["metadata"]["name"]: sa for sa in rendered.of_kind("ServiceAccount")}
    for name, deployment in rendered.backend().items():
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsUser"] == RUNTIME_UID, name
        assert spec["enableServiceLinks"] is False, f"{name}: GATEWAY_PORT=tcp://… would clash"
        assert service_accounts[spec["serviceAccountName"]]["automountServiceAccountToken"] is False
        for container in all_containers(deployment):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        mounts = {m["mountPath"]: m["name"] for m in main_container(deployment)["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be writable"


def test_backend_deployments_are_autoscaled_on_cpu(rendered: Rendered) -> None:
    autoscalers = rendered.of_kind("HorizontalPodAutoscaler")
    for name in DEPLOYABLES:
        targeting = [
            hpa
            for hpa in autoscalers
            if hpa["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        assert len(targeting) == 1, f"{name}: {len(targeting)} autoscalers"
        hpa = targeting[0]
        assert hpa["apiVersion"] == "autoscaling/v2"
        spec = hpa["spec"]
        if rendered.overlay == "prod":
            assert spec["minReplicas"] >= 2, name
        else:
            assert spec["minReplicas"] == 1, name
        assert spec["maxReplicas"] > spec["minReplicas"], name
        resources = [m["resource"] for m in spec["metrics"] if m["type"] == "Resource"]
        assert any(
            r["name"] == "cpu" and r["target"]["type"] == "Utilization" for r in resources
        ), name


# --- Ports, probes, targets and images agree with the code ----------------------------------


def test_service_ports_and_probes_are_the_settings_defaults(rendered: Rendered) -> None:
    for service in SERVICES:
        deployment = rendered.backend()[service]
        container = main_container(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": grpc_port(service), "metrics": metrics_port(service)}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == grpc_port(service), f"{service} {probe}"
        environment = container_environment(rendered, container)
        assert plain(environment, "GRPC_PORT") in (None, str(grpc_port(service)))
        assert plain(environment, "METRICS_PORT") in (None, str(metrics_port(service)))
        k8s_service = rendered.named("Service", service)
        service_ports = {
            p["name"]: (p["port"], p["targetPort"]) for p in k8s_service["spec"]["ports"]
        }
        assert service_ports == {
            "grpc": (grpc_port(service), "grpc"),
            "metrics": (metrics_port(service), "metrics"),
        }
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(metrics_port(service))


def test_gateway_port_and_probes_are_the_settings_defaults(rendered: Rendered) -> None:
    deployment = rendered.backend()["gateway"]
    container = main_container(deployment)
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http", gateway_port())
    ]
    environment = container_environment(rendered, container)
    assert plain(environment, "GATEWAY_PORT") in (None, str(gateway_port()))
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # /readyz waits up to READINESS_TIMEOUT_S for every dependency.
    readiness_timeout_s = default("gateway", "readiness_timeout_s")
    assert container["readinessProbe"]["timeoutSeconds"] > readiness_timeout_s
    (port,) = rendered.named("Service", "gateway")["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (gateway_port(), "http")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(gateway_port())


def test_processes_listen_on_all_interfaces_in_production_mode(rendered: Rendered) -> None:
    for name, deployment in rendered.backend().items():
        environment = container_environment(rendered, main_container(deployment))
        host_variable = "GATEWAY_HOST" if name == "gateway" else "GRPC_HOST"
        assert plain(environment, host_variable) == "0.0.0.0", name
        assert plain(environment, "ENVIRONMENT") == "production", name


def test_grpc_targets_name_each_service_on_its_port(rendered: Rendered) -> None:
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    for name, deployment in rendered.backend().items():
        environment = container_environment(rendered, main_container(deployment))
        for service, field_name in target_fields(name).items():
            value = plain(environment, field_name.upper())
            assert value == f"{service}:{grpc_port(service)}", f"{name}: {field_name.upper()}"
            ports = [p["port"] for p in services[service]["spec"]["ports"]]
            assert grpc_port(service) in ports
    gateway = container_environment(rendered, main_container(rendered.backend()["gateway"]))
    assert all(f"{service.upper()}_GRPC_TARGET" in gateway for service in SERVICES)


def test_images_are_the_components_with_one_pinned_tag(rendered: Rendered) -> None:
    tags = set()
    deployments = {**rendered.backend(), WEB: rendered.named("Deployment", WEB)}
    for name, deployment in deployments.items():
        for container in all_containers(deployment):
            repository, _, tag = container["image"].rpartition(":")
            assert repository == f"{IMAGE_REPOSITORY}/{name}", container["image"]
            assert re.fullmatch(r"[\w][\w.-]*", tag), container["image"]
            assert tag != "latest", container["image"]
            tags.add(tag)
    assert len(tags) == 1, f"{rendered.overlay}: components on different releases: {tags}"
    if rendered.overlay == "prod":
        assert re.fullmatch(r"\d+\.\d+\.\d+", tags.pop()), "prod runs a released version"
    for workload in rendered.workloads():
        for container in all_containers(workload):
            assert ":" in container["image"].rsplit("/", 1)[-1], f"{container['image']}: no tag"


def test_dev_environment_is_accepted_by_each_settings_class(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rendered = render("dev")
    for name, deployment in rendered.backend().items():
        container = main_container(deployment)
        environment = container_environment(rendered, container)
        # Mounted Secret files, written where the test can read them.
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        mounted: dict[str, Path] = {}
        for mount in container["volumeMounts"]:
            source = volumes[mount["name"]].get("secret")
            if source is None:
                continue
            secret = rendered.named("Secret", source["secretName"])
            for item in source["items"]:
                path = tmp_path / name / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                value = decoded(secret, item["key"])
                assert value is not None, f"{name}: {source['secretName']} has no {item['key']}"
                path.write_text(value)
                mounted[f"{mount['mountPath']}/{item['path']}"] = path
        cls = settings_class(name)
        for field_name in cls.model_fields:
            monkeypatch.delenv(field_name.upper(), raising=False)
            monkeypatch.delenv(f"{field_name.upper()}_FILE", raising=False)
        for variable, value in environment.items():
            text = value.value if isinstance(value, SecretValue) else value
            assert text is not None, f"{name}: {variable} has no value in dev"
            if variable.endswith("_FILE"):
                assert text in mounted, f"{name}: {variable}={text} is not a mounted Secret"
                text = str(mounted[text])
            monkeypatch.setenv(variable, text)
        settings: Any = cls()
        assert settings.environment == "production"
        if name != "gateway":
            assert settings.mongodb_database == f"taskmesh_{name}"
        if name == "auth":
            # The mounted dev key is an Ed25519 private key auth signs with.
            assert load_key_store(settings).jwks()
        monkeypatch.undo()


def test_dev_mongodb_users_own_only_their_database() -> None:
    rendered = render("dev")
    users = rendered.generated("Secret", "mongodb-users")
    assert users is not None
    for service in SERVICES:
        environment = container_environment(rendered, main_container(rendered.backend()[service]))
        url = environment["MONGODB_URL"]
        assert isinstance(url, SecretValue)
        assert url.value is not None
        parts = urlsplit(url.value)
        assert parts.username == f"taskmesh-{service}"
        assert parts.password == decoded(users, service)
        assert "replicaSet=rs0" in parts.query
    script = (K8S / "overlays" / "dev" / "mongodb-init.js").read_text()
    assert 'role: "readWrite", db: `${env.MONGODB_DATABASE_PREFIX}${service}`' in script
    assert f"const SERVICES = {list(SERVICES)!r};".replace("'", '"') in script


def test_prod_reads_only_the_documented_external_secrets() -> None:
    rendered = render("prod")
    assert not rendered.of_kind("Secret"), "prod's Secrets are managed outside the repository"
    referenced: dict[str, set[str]] = {}
    optional: set[str] = set()
    for workload in rendered.workloads():
        for container in all_containers(workload):
            for value in container_environment(rendered, container).values():
                if isinstance(value, SecretValue):
                    referenced.setdefault(value.secret, set()).add(value.key)
                    if value.optional:
                        optional.add(value.secret)
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"]["items"]}
                referenced.setdefault(volume["secret"]["secretName"], set()).update(keys)
    assert referenced == PROD_SECRETS
    assert optional == OPTIONAL_SECRETS
    readme = PROD_README.read_text()
    for secret, keys in PROD_SECRETS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{secret}`")), "")
        assert all(f"`{key}`" in row for key in keys), f"README: {secret} and its keys"


def test_dev_generates_every_secret_prod_expects() -> None:
    rendered = render("dev")
    for secret, keys in PROD_SECRETS.items():
        generated = rendered.generated("Secret", secret)
        assert generated is not None, secret
        assert set(generated["data"]) == keys, secret


def test_dev_secret_values_say_they_are_dev_only() -> None:
    for secret in render("dev").of_kind("Secret"):
        for key, value in secret["data"].items():
            text = base64.b64decode(value).decode()
            if key == "jwt_signing_key":
                continue  # a PEM; its file is named *.dev-only.pem
            credentials = re.findall(r":([^:@/]+)@", text) or [text]
            is_name = key in ("username", "BOOTSTRAP_ADMIN_EMAIL") or text.startswith("smtp://")
            assert is_name or all("dev" in c.lower() for c in credentials), (
                f"{secret['metadata']['name']}/{key}"
            )


def test_ingress_sends_the_api_paths_to_the_gateway_and_the_rest_to_the_web_app(
    rendered: Rendered,
) -> None:
    (ingress,) = rendered.of_kind("Ingress")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "traefik"
    (tls,) = spec["tls"]
    assert tls["secretName"] == "taskmesh-tls"
    (rule,) = spec["rules"]
    assert tls["hosts"] == [rule["host"]]
    backends = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    assert set(backends) == {*GATEWAY_PATHS, "/"}, "never /metrics"
    for path in GATEWAY_PATHS:
        assert backends[path] == {"name": "gateway", "port": {"name": "http"}}, path
    # Ingress paths match by the longest prefix: `/` gets what the gateway's do not.
    assert backends["/"] == {"name": WEB, "port": {"name": "http"}}
    (root,) = [p for p in rule["http"]["paths"] if p["path"] == "/"]
    assert root["pathType"] == "Prefix"
    environment = container_environment(
        rendered, main_container(rendered.backend()["notifications"])
    )
    public_url = urlsplit(plain(environment, "PUBLIC_BASE_URL") or "")
    assert (public_url.scheme, public_url.hostname) == ("https", rule["host"])


def test_the_web_app_runs_as_compose_runs_it_on_a_read_only_root(rendered: Rendered) -> None:
    deployment = rendered.named("Deployment", WEB)
    container = main_container(deployment)
    spec = pod_spec(deployment)
    compose_web = compose_services()[WEB]

    repository = container["image"].rpartition(":")[0]
    assert repository == compose_default(compose_web["image"]).rpartition(":")[0]
    uid, gid = (int(part) for part in compose_web["user"].split(":"))
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (
        uid,
        gid,
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "nginx writes its pid and buffers to /tmp"
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", WEB_PORT)]
    compose_port = compose_web["labels"]["traefik.http.services.web.loadBalancer.server.port"]
    assert int(compose_port) == WEB_PORT
    (port,) = rendered.named("Service", WEB)["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (WEB_PORT, "http")
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/", "port": "http"}, probe
    assert "env" not in container
    assert "envFrom" not in container


def test_the_web_app_runs_one_replica_in_dev_and_two_in_prod(rendered: Rendered) -> None:
    deployment = rendered.named("Deployment", WEB)
    strategy = deployment["spec"]["strategy"]

    assert deployment["spec"]["replicas"] == (1 if rendered.overlay == "dev" else 2)
    assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%")
    pre_stop_s = main_container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > pre_stop_s


# --- NetworkPolicies ------------------------------------------------------------------------


def test_everything_is_denied_by_default(rendered: Rendered) -> None:
    deny = rendered.named("NetworkPolicy", "default-deny-all")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    targets = pods(rendered)
    for source in targets.values():
        assert not allowed(rendered, source, INTERNET_HOST, 443), source.name
    for source in [*targets.values(), *OUTSIDERS]:
        for target in targets.values():
            if source is not target:
                # A port nothing listens on is never opened.
                assert not allowed(rendered, source, target, 2222), f"{source.name} → {target.name}"


def test_every_pod_resolves_names(rendered: Rendered) -> None:
    for pod in pods(rendered).values():
        for protocol in ("UDP", "TCP"):
            assert allowed(rendered, pod, KUBE_DNS, 53, protocol), pod.name


def test_every_port_the_gateway_calls_is_open_to_it(rendered: Rendered) -> None:
    everyone = pods(rendered)
    gateway_targets = {
        service: default("gateway", field_name)
        for service, field_name in target_fields("gateway").items()
    }
    assert set(gateway_targets) == set(SERVICES)
    environment = container_environment(rendered, main_container(rendered.backend()["gateway"]))
    for service in SERVICES:
        host, _, port = str(plain(environment, f"{service.upper()}_GRPC_TARGET")).rpartition(":")
        assert host == service
        assert allowed(rendered, everyone["gateway"], everyone[service], int(port)), service


def test_only_the_callers_reach_each_service(rendered: Rendered) -> None:
    everyone = pods(rendered)
    for service in SERVICES:
        reached_by = who_reaches(rendered, everyone[service], grpc_port(service))
        assert reached_by == expected_callers(rendered.overlay, service), service


def test_only_prometheus_reaches_the_metrics_ports(rendered: Rendered) -> None:
    everyone = pods(rendered)
    for service in SERVICES:
        assert who_reaches(rendered, everyone[service], metrics_port(service)) == {"prometheus"}


def test_only_traefik_reaches_the_web_app_which_reaches_nothing(rendered: Rendered) -> None:
    everyone = pods(rendered)
    web = everyone[WEB]

    assert who_reaches(rendered, web, WEB_PORT) == {"traefik"}
    for target in everyone.values():
        if target is not web:
            ports = {*target.named_ports.values(), *DATASTORE_PORTS.values()}
            for port in ports:
                assert not allowed(rendered, web, target, port), f"web → {target.name}:{port}"
    for port in (80, 443, *SMTP_PORTS):
        assert not allowed(rendered, web, INTERNET_HOST, port), port


def test_only_traefik_and_prometheus_reach_the_gateway(rendered: Rendered) -> None:
    gateway = pods(rendered)["gateway"]
    assert who_reaches(rendered, gateway, gateway_port()) == {"traefik", "prometheus"}
    for service in SERVICES:
        assert not allowed(rendered, TRAEFIK, pods(rendered)[service], grpc_port(service))


def test_dev_datastores_are_reached_only_by_their_owners() -> None:
    rendered = render("dev")
    everyone = pods(rendered)
    for store, port in DATASTORE_PORTS.items():
        owners = {c for c, stores in DATASTORES_USED.items() if store in stores}
        reached_by = who_reaches(rendered, everyone[store], port) - {store}
        assert reached_by == owners, store


def test_prod_components_reach_only_their_managed_datastores() -> None:
    rendered = render("prod")
    blocks = {
        peer["ipBlock"]["cidr"]
        for policy in rendered.of_kind("NetworkPolicy")
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer and peer["ipBlock"]["cidr"] != "0.0.0.0/0"
    }
    assert len(blocks) == 1, f"one network for the managed data stores, not {blocks}"
    network = ipaddress.ip_network(blocks.pop())
    managed = Endpoint("managed data stores", None, ip=str(next(network.hosts())))
    everyone = pods(rendered)
    store_ports = {port for ports in PROD_DATASTORE_PORTS.values() for port in ports}
    for component in DEPLOYABLES:
        expected = {
            port
            for store in DATASTORES_USED[component]
            for port in PROD_DATASTORE_PORTS.get(store, ())
        }
        open_ports = {p for p in store_ports if allowed(rendered, everyone[component], managed, p)}
        assert open_ports == expected, component
        smtp = {p for p in SMTP_PORTS if allowed(rendered, everyone[component], INTERNET_HOST, p)}
        assert smtp == (SMTP_PORTS if component == "notifications" else set()), component
    for name, service in ((s["metadata"]["name"], s) for s in rendered.of_kind("Service")):
        if name in PROD_DATASTORE_PORTS:
            assert service["spec"]["type"] == "ExternalName", name


# --- compose/compose.yaml -------------------------------------------------------------------

_DEFAULTED = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def compose_default(text: str) -> str:
    """A compose value with every `${NAME:-default}` replaced by its default (`${NAME}`: '')."""
    return _DEFAULTED.sub(lambda m: m.group("default") or "", text)


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's variables: its `env_file`s, then `environment`, defaults applied."""
    variables: dict[str, str] = {}
    env_files = service.get("env_file", [])
    for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
        path = COMPOSE_FILE.parent / (entry if isinstance(entry, str) else entry["path"])
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, _, value = line.partition("=")
                variables[name.strip()] = value.strip()
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    variables.update({name: str(value) for name, value in environment.items()})
    return {name: compose_default(value) for name, value in variables.items()}


def compose_services() -> dict[str, Any]:
    """The `services` of compose/compose.yaml."""
    assert COMPOSE_FILE.exists(), f"{COMPOSE_FILE.relative_to(ROOT)} is missing"
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    services: dict[str, Any] = document["services"]
    return services


def compose_ports(component: str) -> dict[str, int]:
    """The ports the settings defaults and the image give a component, by variable name."""
    if component == "gateway":
        return {"GATEWAY_PORT": gateway_port()}
    return {"GRPC_PORT": grpc_port(component), "METRICS_PORT": metrics_port(component)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_compose_runs_the_same_images_ports_and_targets(overlay: str) -> None:
    rendered = render(overlay)
    services = compose_services()
    for component, deployment in rendered.backend().items():
        compose_service = services[component]
        repository = main_container(deployment)["image"].rpartition(":")[0]
        compose_image = compose_default(compose_service["image"]).rpartition(":")[0]
        assert compose_image == repository, component
        compose_env = compose_environment(compose_service)
        for variable, port in compose_ports(component).items():
            assert compose_env.get(variable, str(port)) == str(port), f"{component}: {variable}"
        k8s_env = container_environment(rendered, main_container(deployment))
        for field_name in target_fields(component).values():
            variable = field_name.upper()
            assert compose_env.get(variable) == plain(k8s_env, variable), f"{component}: {variable}"
        host_variable = "GATEWAY_HOST" if component == "gateway" else "GRPC_HOST"
        assert compose_env.get(host_variable, "0.0.0.0") == plain(k8s_env, host_variable)


COMPOSE_DATASTORES = {
    "mongodb": "mongo",
    "redis": "redis",
    "rabbitmq": "rabbitmq",
    "mailpit": "mailpit",
}
"""The dev overlay's data stores and the compose services that run the same software."""


def test_dev_datastores_run_the_releases_compose_runs() -> None:
    services = compose_services()
    statefulsets = {w["metadata"]["name"]: w for w in render("dev").workloads(LONG_RUNNING_KINDS)}
    for name, compose_name in COMPOSE_DATASTORES.items():
        images = {container["image"] for container in all_containers(statefulsets[name])}
        assert images == {compose_default(services[compose_name]["image"])}, name


def iter_documents(path: Path) -> Iterator[dict[str, Any]]:
    """The YAML documents of one k8s source file."""
    yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def test_source_manifests_carry_no_namespace_or_tag() -> None:
    # The kustomizations set both: a manifest's own would silently win over an overlay's.
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in iter_documents(path):
            assert "namespace" not in document.get("metadata", {}), path.name
            if document.get("kind") == "Deployment":
                for container in all_containers(document):
                    assert ":" not in container["image"].rsplit("/", 1)[-1], path.name
