from __future__ import annotations

from taskmesh.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from taskmesh_analytics.main import SERVICE
from taskmesh_chassis.testing import GrpcServiceContract


class TestAnalyticsService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.analytics.v1.AnalyticsService"
    stub_class = analytics_pb2_grpc.AnalyticsServiceStub
    unimplemented_rpc = ("GetSummary", analytics_pb2.GetSummaryRequest())
