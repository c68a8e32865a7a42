"""The web app's static server: files, the single-page fallback, 404s, headers, traversal.

A small fake build in a temporary directory stands in for web/dist; the last test serves
the real build when `make web` has made one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Message
from taskmesh_localrun.options import DEFAULT_WEB_DIST
from taskmesh_localrun.webapp import CONTENT_SECURITY_POLICY, create_app, is_app_route

INDEX_HTML = b'<!doctype html><div id="root"></div><script type="module" src="/assets/app-1a2b.js">'
APP_JS = b"console.log('taskmesh')"
SECRET = b"outside the build"
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A build: index.html, a favicon and one hashed asset; secrets beside it, not in it."""
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_bytes(INDEX_HTML)
    (build / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (build / "assets" / "app-1a2b.js").write_bytes(APP_JS)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "secret").write_bytes(SECRET)
    return build


@pytest.fixture
def client(dist: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(dist)), base_url="http://web"
    )


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_get(app: ASGIApp, path: str) -> RawAnswer:
    """GET with the path exactly as given: HTTP clients would resolve its `..` first."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"web")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8090),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return RawAnswer(start["status"], headers, body)


# --- Files and the fallback -----------------------------------------------------------------


async def test_the_root_is_index_html_revalidated_on_every_use(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.content == INDEX_HTML
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/tasks", "/tasks/abc", "/admin/analytics", "/reset-password"])
async def test_a_deep_link_is_answered_with_index_html(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"token": "t"})

    assert response.status_code == 200
    assert response.content == INDEX_HTML
    assert response.headers["cache-control"] == "no-cache"


async def test_head_of_a_deep_link_has_the_headers_of_index_html_and_no_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.head("/tasks/abc")

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len(INDEX_HTML)


async def test_a_revalidated_deep_link_is_304_when_index_html_did_not_change(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/tasks/abc")

    again = await client.get("/tasks/abc", headers={"If-None-Match": first.headers["etag"]})

    assert again.status_code == 304
    assert again.headers["content-security-policy"] == EXPECTED_CSP


async def test_hashed_assets_are_cached_for_good(client: httpx.AsyncClient) -> None:
    response = await client.get("/assets/app-1a2b.js")

    assert response.status_code == 200
    assert response.content == APP_JS
    assert "javascript" in response.headers["content-type"]
    assert response.headers["cache-control"] == IMMUTABLE


async def test_other_files_of_the_build_are_served_and_revalidated(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/favicon.svg")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/assets/app-0000.js", "/assets/chunk", "/assets/", "/favicon.ico", "/tasks/a.json"]
)
async def test_a_missing_file_is_404_not_the_app_and_not_cached(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.content != INDEX_HTML
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == EXPECTED_CSP


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_only_get_and_head_are_answered(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/tasks/abc")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_an_app_route_is_a_path_without_extension_outside_the_assets() -> None:
    assert is_app_route("/")
    assert is_app_route("/tasks/abc")
    assert is_app_route("/assets")
    assert not is_app_route("/assets/chunk")
    assert not is_app_route("/favicon.ico")
    assert not is_app_route("/.env")


# --- Never outside the build ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/../secret", "/assets/../../secret.txt", "/tasks/../../secret"],
)
async def test_a_path_that_climbs_out_of_the_build_is_404(dist: Path, path: str) -> None:
    answer = await raw_get(create_app(dist), path)

    assert answer.status == 404
    assert SECRET not in answer.body
    assert answer.body != INDEX_HTML


async def test_a_symlink_out_of_the_build_is_not_followed(
    dist: Path, client: httpx.AsyncClient
) -> None:
    (dist / "leak.txt").symlink_to(dist.parent / "secret.txt")

    response = await client.get("/leak.txt")

    assert response.status_code == 404
    assert SECRET not in response.content


# --- Headers --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/tasks/abc", "/assets/app-1a2b.js", "/missing.png"])
async def test_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.headers["content-security-policy"] == EXPECTED_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers


def test_the_policy_allows_no_inline_script_or_style_and_no_other_origin() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


# --- The command ----------------------------------------------------------------------------


def test_the_command_refuses_a_directory_without_a_build(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskmesh_localrun.webapp", "--dist", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "make web" in done.stderr


# --- The real build -------------------------------------------------------------------------


async def test_the_real_build_is_served_with_every_asset_it_references() -> None:
    if not (DEFAULT_WEB_DIST / "index.html").is_file():
        pytest.skip("web/dist is not built (make web)")
    transport = httpx.ASGITransport(app=create_app(DEFAULT_WEB_DIST))
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as real:
        index = await real.get("/tasks/some-task")
        referenced = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index.text)
        assets = {path: await real.get(path) for path in referenced}

    assert index.status_code == 200
    assert '<div id="root">' in index.text
    # The policy forbids inline code: the build has none.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index.text)
    assert "<style" not in index.text
    assert any(path.endswith(".js") for path in referenced)
    for path, response in assets.items():
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == IMMUTABLE, path
