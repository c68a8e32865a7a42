"""Configuration of the analytics service (docs/processes.md, docs/analytics.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port

from taskmesh_analytics.repository import Retention


class AnalyticsSettings(GrpcServiceSettings, EventSettings):
    """Settings of the analytics service: the common ones, its ports, how long rollups live."""

    service_name: ClassVar[str] = "analytics"

    grpc_port: Port = 50055
    metrics_port: Port = 9105

    # One delivery at a time per instance: every event increments the same few bucket
    # documents, and concurrent transactions on one document conflict (docs/analytics.md).
    events_prefetch: int = Field(default=1, ge=1, le=1000)

    # Buckets are deleted this long after they end. Minutes must outlive the 7-day window
    # (its first hour is read in minutes), hours too; days the 30-day default series.
    minute_rollup_retention_days: int = Field(default=8, ge=8, le=366)
    hour_rollup_retention_days: int = Field(default=90, ge=8, le=3660)
    day_rollup_retention_days: int = Field(default=1830, ge=31, le=36600)

    @property
    def retention(self) -> Retention:
        """The retention of each grain."""
        return Retention(
            minute=timedelta(days=self.minute_rollup_retention_days),
            hour=timedelta(days=self.hour_rollup_retention_days),
            day=timedelta(days=self.day_rollup_retention_days),
        )
