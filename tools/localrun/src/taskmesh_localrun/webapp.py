"""The web app's static server under `make run`: the built single-page app (web/dist).

Traefik sends it every path the gateways do not serve. A path that names no file and has
no extension is a route of the app (`/tasks/abc`), answered with index.html; the hashed
build output under /assets/ is cached for good, index.html never without revalidation.
Every answer carries the same security headers as the nginx of the web image
(web/nginx.conf): the Content-Security-Policy allows only this origin's scripts and styles.

    python -m taskmesh_localrun.webapp --dist web/dist --port 8090
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskmesh_localrun.ports import DEFAULT_WEB_PORT, LOCAL_HOST

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSETS_PREFIX = "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
INDEX = "index.html"


def is_app_route(path: str) -> bool:
    """Whether a request path that names no file is one of the app's routes.

    Build output (/assets/...) and anything with an extension (`/favicon.ico`) name files:
    for those a missing file is a 404, not the app.
    """
    if path.startswith(ASSETS_PREFIX):
        return False
    return "." not in PurePosixPath(path).name


class SinglePageFiles(StaticFiles):
    """StaticFiles over the build output, answering the app's routes with index.html."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file at path; index.html for an app route; else what StaticFiles says."""
        try:
            return await super().get_response(path, scope)
        except HTTPException as refused:
            # `path` is normalised: one that climbs out of the directory starts with "..".
            escapes = path == ".." or path.startswith(f"..{os.sep}")
            if refused.status_code != 404 or escapes or not is_app_route(scope["path"]):
                raise
        full_path, stat_result = await anyio.to_thread.run_sync(self.lookup_path, INDEX)
        if stat_result is None or not stat.S_ISREG(stat_result.st_mode):
            raise HTTPException(status_code=404)
        return self.file_response(full_path, stat_result, scope)


class SecurityHeaders:
    """Adds the security headers to every answer, and the caching rule of its path."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                # Only a file that is there may be kept: a 404 for an asset of a newer
                # build must not stick.
                found = message["status"] in (200, 304)
                cacheable = found and path.startswith(ASSETS_PREFIX)
                headers["Cache-Control"] = IMMUTABLE if cacheable else REVALIDATE
            await send(message)

        await self._app(scope, receive, send_with_headers)


def create_app(dist: Path) -> ASGIApp:
    """The ASGI app serving the build output in dist (GET and HEAD only)."""
    files = SinglePageFiles(directory=dist, follow_symlink=False)
    return SecurityHeaders(Starlette(routes=[Mount("/", app=files)]))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m taskmesh_localrun.webapp",
        description="Serve the built web app (web/dist) with its SPA fallback and headers.",
    )
    parser.add_argument("--host", default=LOCAL_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_WEB_PORT)
    parser.add_argument("--dist", type=Path, default=Path("web/dist"))
    args = parser.parse_args(argv)
    if not (args.dist / INDEX).is_file():
        parser.error(f"{args.dist / INDEX} does not exist: build the web app with `make web`")
    uvicorn.run(
        create_app(args.dist.resolve()),
        host=args.host,
        port=args.port,
        # Traefik's access log has every request already.
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
