"""Fixtures shared by every service's tests (one SecantusDB server for all of them)."""

from taskmesh_chassis.testing import free_port, secantus_url

__all__ = ["free_port", "secantus_url"]
