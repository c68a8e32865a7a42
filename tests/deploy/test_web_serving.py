"""The two servers of the web app answer alike: `make run`'s and the image's nginx.

Each serves the same small fake build on a free port: the local static server
(`python -m taskmesh_localrun.webapp`) and nginx with web/nginx.conf, its paths moved into a
temporary directory (the build, its pid and temporary files; the port). Both must answer
every path the same way: the app's routes with index.html, the build's files, 404 for a
missing file (never the app, never kept), nothing outside the build, the same security
headers and caching. The nginx half needs an nginx binary (GitHub's runners have one;
Debian: `apt-get install nginx-light`).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from taskmesh_chassis.testing import find_free_port
from taskmesh_localrun.testing import eventually
from taskmesh_localrun.webapp import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONFIG = ROOT / "web" / "nginx.conf"
INDEX_HTML = b'<!doctype html><div id="root"></div><script type="module" src="/assets/app-1a2b.js">'
APP_JS = b"console.log('taskmesh')"
SECRET = b"outside the build"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    port: int


def write_build(directory: Path) -> Path:
    """A build in miniature, with a secret beside it that must never be served."""
    build = directory / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_bytes(INDEX_HTML)
    (build / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (build / "assets" / "app-1a2b.js").write_bytes(APP_JS)
    (directory / "secret.txt").write_bytes(SECRET)
    return build


def nginx_config_for(build: Path, work: Path, port: int) -> str:
    """web/nginx.conf with the image's paths and port replaced by this test's."""
    text = NGINX_CONFIG.read_text()
    replaced = {
        " /tmp/": f" {work}/",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "root /usr/share/nginx/html;": f"root {build};",
        "access_log /dev/stdout combined;": f"access_log {work}/access.log combined;",
    }
    for old, new in replaced.items():
        assert old in text, old
        text = text.replace(old, new)
    if os.geteuid() == 0:
        # A master running as root would start its workers as `nobody`, who cannot read
        # the test's private temporary directory; the image runs everything as one user.
        text = f"user {getpass.getuser()};\n{text}"
    return text


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture(scope="module", params=["localrun", "nginx"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp(request.param)
    build = write_build(tmp_path)
    port = find_free_port()
    log = tmp_path / "server.log"
    if request.param == "localrun":
        argv = [sys.executable, "-m", "taskmesh_localrun.webapp", "--port", str(port)]
        argv += ["--dist", str(build)]
    else:
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        if nginx is None:
            pytest.fail(
                "no nginx binary here: `make test` installs it as root, else "
                "`sudo apt-get install nginx-light`",
                pytrace=False,
            )
        work = tmp_path / "nginx"
        work.mkdir()
        config = work / "nginx.conf"
        config.write_text(nginx_config_for(build, work, port))
        argv = [nginx, "-c", str(config), "-p", str(work), "-e", "stderr"]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
    try:
        if not eventually(lambda: _status(f"{url}/") == 200, timeout_s=20):
            pytest.fail(f"{request.param} did not start:\n{log.read_text(errors='replace')}")
        yield Server(request.param, url, port)
    finally:
        process.terminate()
        process.wait(timeout=20)


def raw_get(server: Server, target: str) -> tuple[int, bytes]:
    """GET with the request target exactly as given; the status and the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(
            f"GET {target} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert status, answer[:200]
    return int(status.group(1)), answer


def get(server: Server, path: str, method: str = "GET") -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", timeout=5)


@pytest.mark.parametrize("path", ["/", "/tasks", "/tasks/abc", "/admin/analytics", "/assets"])
def test_the_root_and_every_app_route_is_index_html_revalidated(server: Server, path: str) -> None:
    response = get(server, path)

    assert response.status_code == 200
    assert response.content == INDEX_HTML
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"


def test_a_hashed_asset_is_kept_for_a_year(server: Server) -> None:
    response = get(server, "/assets/app-1a2b.js")

    assert response.status_code == 200
    assert response.content == APP_JS
    assert "javascript" in response.headers["content-type"]
    assert response.headers["cache-control"] == IMMUTABLE


def test_another_file_of_the_build_is_revalidated(server: Server) -> None:
    response = get(server, "/favicon.svg")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/assets/app-0000.js", "/assets/chunk", "/favicon.ico"])
def test_a_missing_file_is_a_404_never_the_app_and_never_kept(server: Server, path: str) -> None:
    response = get(server, path)

    assert response.status_code == 404
    assert response.content != INDEX_HTML
    assert "immutable" not in response.headers.get("cache-control", "")


def test_a_head_of_an_app_route_has_no_body(server: Server) -> None:
    response = get(server, "/tasks/abc", method="HEAD")

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_only_get_and_head_are_served(server: Server, method: str) -> None:
    assert get(server, "/tasks/abc", method=method).status_code == 405


@pytest.mark.parametrize("target", ["/../secret.txt", "/assets/../../secret.txt"])
def test_nothing_outside_the_build_is_served(server: Server, target: str) -> None:
    status, answer = raw_get(server, target)

    assert status in (400, 404), f"{server.name}: {status}"
    assert SECRET not in answer


@pytest.mark.parametrize("path", ["/", "/tasks/abc", "/assets/app-1a2b.js", "/missing.png"])
def test_every_answer_carries_the_security_headers(server: Server, path: str) -> None:
    response = get(server, path)

    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert re.fullmatch(r"nginx|", response.headers.get("server", "")), "no version shown"
