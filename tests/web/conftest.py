"""The browser tests start their suite the way every end-to-end suite does (tests/e2e)."""

from ..e2e.conftest import SHARED_SUITE_RATE_LIMITS, StartSuite, start_suite

__all__ = ["SHARED_SUITE_RATE_LIMITS", "StartSuite", "start_suite"]
