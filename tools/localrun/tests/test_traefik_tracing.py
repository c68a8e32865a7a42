"""The real Traefik binary with the generated configuration: trace context at the edge.

Traefik runs in front of a plain HTTP backend that records the headers it is sent; with
tracing on, it exports to an in-process OTLP receiver.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from taskmesh_chassis.testing import find_free_port, serving_otlp_receiver
from taskmesh_localrun import traefik
from taskmesh_localrun.plan import Tools
from taskmesh_localrun.testing import eventually

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"


class RecordingBackend(ThreadingHTTPServer):
    """Answers 200 to every GET and keeps the headers each path was requested with."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: dict[str, dict[str, str]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Recorder(BaseHTTPRequestHandler):
    server: RecordingBackend

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.received[path] = {key.lower(): value for key, value in self.headers.items()}
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """The test reads what was received, not a log."""


@pytest.fixture
def backend() -> Iterator[RecordingBackend]:
    server = RecordingBackend()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@contextmanager
def running_traefik(
    tmp_path: Path, backend: RecordingBackend, otlp_endpoint: str | None
) -> Iterator[str]:
    """Traefik on free ports in front of `backend`; yield its public URL, stop it at the end."""
    public_port, api_port = find_free_port(), find_free_port()
    static = traefik.write_configs(
        tmp_path / "traefik",
        public_port=public_port,
        api_port=api_port,
        gateway_urls=[backend.url],
        web_url=None,
        log_dir=tmp_path,
        otlp_endpoint=otlp_endpoint,
    )
    url = f"http://127.0.0.1:{public_port}"
    with (tmp_path / "traefik.log").open("wb") as output:
        process = subprocess.Popen(
            [Tools.from_environment().traefik, f"--configFile={static}"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Routing is ready once a request reaches the backend (the file provider loads late).
        if not eventually(lambda: _answers(f"{url}/api/ready"), timeout_s=20):
            log = (tmp_path / "traefik.log").read_text(errors="replace")
            pytest.fail(f"Traefik did not route within 20 s:\n{log[-3000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_without_tracing_a_clients_trace_context_passes_through_unchanged(
    tmp_path: Path, backend: RecordingBackend
) -> None:
    with running_traefik(tmp_path, backend, otlp_endpoint=None) as url:
        httpx.get(f"{url}/api/traced", headers={"traceparent": TRACEPARENT, "tracestate": "v=1"})
        httpx.get(f"{url}/api/untraced")

    assert backend.received["/api/traced"]["traceparent"] == TRACEPARENT
    assert backend.received["/api/traced"]["tracestate"] == "v=1"
    assert "traceparent" not in backend.received["/api/untraced"]


def test_with_tracing_traefik_continues_the_trace_and_exports_its_spans(
    tmp_path: Path, backend: RecordingBackend
) -> None:
    with serving_otlp_receiver() as (receiver, endpoint):
        with running_traefik(tmp_path, backend, otlp_endpoint=endpoint) as url:
            httpx.get(f"{url}/api/traced?access_token=secret", headers={"traceparent": TRACEPARENT})
            httpx.get(f"{url}/api/untraced")

        # Traefik exports what is left when it stops.
        def exported() -> bool:
            return sum(span.name == "ReverseProxy" for span in receiver.spans()) >= 2

        assert eventually(exported, timeout_s=15)
        spans = [span for span in receiver.spans() if span.trace_id == TRACE_ID]

    [server] = [span for span in spans if span.kind == "SERVER"]
    [proxy] = [span for span in spans if span.kind == "CLIENT"]
    assert {span.service for span in spans} == {"taskmesh-traefik"}
    assert server.parent_span_id == CLIENT_SPAN_ID
    assert proxy.parent_span_id == server.span_id
    # The backend is called in Traefik's trace, as a child of its proxy span.
    _, trace_id, parent_id, _ = backend.received["/api/traced"]["traceparent"].split("-")
    assert (trace_id, parent_id) == (TRACE_ID, proxy.span_id)
    # A request without trace context starts a trace at the edge.
    _, new_trace_id, _, _ = backend.received["/api/untraced"]["traceparent"].split("-")
    assert new_trace_id != TRACE_ID
    # Query parameters, such as the WebSocket's token, are redacted.
    assert all("secret" not in str(value) for span in spans for value in span.attributes.values())
