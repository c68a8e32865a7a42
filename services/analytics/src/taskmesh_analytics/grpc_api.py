"""The gRPC edge of the analytics service: protobuf messages in, domain calls, messages out.

No RPC is implemented yet: the generated base class answers UNIMPLEMENTED for each one.
"""

from __future__ import annotations

from taskmesh.analytics.v1 import analytics_pb2, analytics_pb2_grpc

SERVICE_NAME: str = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.analytics.v1.AnalyticsService."""
