"""The web app beside the API: who answers which path at the public URL.

Integration: the real Traefik with the generated configuration, in front of a recording
stand-in for the gateways and the real static server over a small fake build.
End to end: a whole runner (`--web-dist` pointing at the fake build) serves the app at `/`
and at deep links through Traefik while `/api/v1/...` still reaches the gateway.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from taskmesh_chassis.testing import find_free_port
from taskmesh_localrun import traefik
from taskmesh_localrun.plan import Tools
from taskmesh_localrun.testing import LocalRun, delete_event_topology, eventually

INDEX_HTML = '<!doctype html><div id="root"></div><script type="module" src="/assets/app-9f8e.js">'
GATEWAY_PATHS = [
    "/api/v1/tasks?status=todo",
    "/api/v1/ws?access_token=secret-token",
    "/docs",
    "/docs/oauth2-redirect",
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known/jwks.json",
]
APP_ROUTES = ["/", "/tasks", "/tasks/abc", "/admin/analytics", "/login", "/apifoo", "/metricsx"]


def write_fake_build(directory: Path) -> Path:
    """A build as `make web` leaves it, in miniature."""
    (directory / "assets").mkdir(parents=True)
    (directory / "index.html").write_text(INDEX_HTML)
    (directory / "assets" / "app-9f8e.js").write_text("console.log('taskmesh')")
    return directory


class GatewayStandIn(ThreadingHTTPServer):
    """Answers every GET with `gateway` and records the paths it was asked for."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Recorder(BaseHTTPRequestHandler):
    server: GatewayStandIn

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"gateway")

    def log_message(self, format: str, *args: object) -> None:
        """The test reads the recorded paths, not a log."""


@pytest.fixture
def gateway() -> Iterator[GatewayStandIn]:
    server = GatewayStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


@contextmanager
def running(argv: list[str], log: Path, ready_url: str) -> Iterator[None]:
    """A child process, until the block ends; ready once ready_url answers 200."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
    try:
        if not eventually(lambda: _status(ready_url) == 200, timeout_s=20):
            pytest.fail(f"{argv[0]} did not get ready:\n{log.read_text(errors='replace')[-3000:]}")
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextmanager
def edge(tmp_path: Path, gateway: GatewayStandIn, web: bool) -> Iterator[str]:
    """Traefik with the runner's configuration, and the static server when `web`; its URL."""
    public_port, api_port, web_port = find_free_port(), find_free_port(), find_free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    static = traefik.write_configs(
        tmp_path / "traefik",
        public_port=public_port,
        api_port=api_port,
        gateway_urls=[gateway.url],
        web_url=web_url if web else None,
        log_dir=tmp_path,
    )
    public_url = f"http://127.0.0.1:{public_port}"
    web_server = [
        *(sys.executable, "-m", "taskmesh_localrun.webapp", "--port", str(web_port)),
        *("--dist", str(write_fake_build(tmp_path / "dist"))),
    ]
    with running(web_server, tmp_path / "web.log", f"{web_url}/"):
        traefik_argv = [Tools.from_environment().traefik, f"--configFile={static}"]
        # Routing is ready once the gateways' health check has passed.
        with running(traefik_argv, tmp_path / "traefik.log", f"{public_url}/healthz"):
            yield public_url


@pytest.mark.integration
def test_traefik_sends_the_api_paths_to_the_gateways_and_the_rest_to_the_web_app(
    tmp_path: Path, gateway: GatewayStandIn
) -> None:
    with edge(tmp_path, gateway, web=True) as url:
        to_gateway = {path: httpx.get(f"{url}{path}", timeout=5) for path in GATEWAY_PATHS}
        to_web = {path: httpx.get(f"{url}{path}", timeout=5) for path in APP_ROUTES}
        asset = httpx.get(f"{url}/assets/app-9f8e.js", timeout=5)
        missing_asset = httpx.get(f"{url}/assets/app-0000.js", timeout=5)

    for path, response in to_gateway.items():
        assert (response.status_code, response.text) == (200, "gateway"), path
    for path, response in to_web.items():
        assert (response.status_code, response.text) == (200, INDEX_HTML), path
        assert "content-security-policy" in response.headers, path
    assert gateway.paths.count("/healthz") >= 1
    assert not {path for path in gateway.paths if path.split("?")[0] in APP_ROUTES}
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert missing_asset.status_code == 404
    access_log = (tmp_path / "traefik-access.log").read_text()
    assert "/tasks/abc" in access_log
    assert "secret-token" not in access_log


@pytest.mark.integration
def test_without_the_web_app_traefik_routes_only_the_api_paths(
    tmp_path: Path, gateway: GatewayStandIn
) -> None:
    with edge(tmp_path, gateway, web=False) as url:
        api = httpx.get(f"{url}/api/v1/tasks", timeout=5)
        root = httpx.get(f"{url}/", timeout=5)
        deep_link = httpx.get(f"{url}/tasks/abc", timeout=5)

    assert (api.status_code, api.text) == (200, "gateway")
    assert (root.status_code, deep_link.status_code) == (404, 404)


# --- The whole runner -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """A whole run (one gateway) serving the fake build, on its own databases and exchange."""
    tag = secrets.token_hex(4)
    exchange = f"localrun-web.events.{tag}"
    env = {
        **os.environ,
        "MONGODB_DATABASE_PREFIX": f"localrun_web_{tag}_",
        "EVENTS_EXCHANGE": exchange,
        # Waiting for /readyz is anonymous traffic from 127.0.0.1 too: no 429 for the tests.
        "RATE_LIMIT_ANON_PER_MIN": "100000",
    }
    build = write_fake_build(tmp_path_factory.mktemp("web") / "dist")
    data_dir = tmp_path_factory.mktemp("localrun-web") / "run"
    args = ["--free-ports", "--gateways", "1", "--web-dist", str(build)]
    run = LocalRun(data_dir, args, env)
    try:
        run.wait_until_readyz()
        yield run
    finally:
        try:
            run.close()
        finally:
            delete_event_topology(exchange)


@pytest.mark.e2e
def test_a_run_serves_the_app_at_the_root_and_at_deep_links(suite: LocalRun) -> None:
    root = httpx.get(f"{suite.url}/", timeout=10)
    deep_link = httpx.get(f"{suite.url}/tasks/abc", timeout=10)

    for response in (root, deep_link):
        assert response.status_code == 200
        assert response.text == INDEX_HTML
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
    web = suite.process_info("web")
    assert web["returncode"] is None
    assert Path(web["log"]).name == "web.log"


@pytest.mark.e2e
def test_a_run_still_sends_the_api_to_the_gateway(suite: LocalRun) -> None:
    tasks = httpx.get(f"{suite.url}/api/v1/tasks", timeout=10)
    health = httpx.get(f"{suite.url}/healthz", timeout=10)

    assert tasks.status_code == 401
    assert tasks.headers["content-type"] == "application/problem+json"
    assert health.status_code == 200
    assert "x-request-id" in health.headers


@pytest.mark.integration
def test_a_run_without_a_build_refuses_to_start_and_says_how_to_build(tmp_path: Path) -> None:
    empty = tmp_path / "no-build"
    empty.mkdir()

    result = subprocess.run(
        [
            *(sys.executable, "-m", "taskmesh_localrun", "--free-ports"),
            *("--data-dir", str(tmp_path / "run"), "--web-dist", str(empty)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        f"localrun The web app is not built: run `make web` ({empty}/index.html is missing), "
        "or run with --no-web"
    ]
    assert not (tmp_path / "run" / "localrun.json").exists()
