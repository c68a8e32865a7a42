from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from taskmesh_chassis.metrics import RPC_HANDLED, start_metrics_server


async def test_metrics_endpoint_serves_the_rpc_metrics() -> None:
    RPC_HANDLED.labels("test.v1.Echo", "Ping", "OK").inc()
    server = start_metrics_server(0)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.stop()
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    labels = (("grpc_code", "OK"), ("grpc_method", "Ping"), ("grpc_service", "test.v1.Echo"))
    assert samples[("grpc_server_handled_total", labels)] >= 1
