"""The error of an email that cannot be built: a caller's mistake, never a delivery problem."""

from __future__ import annotations


class InvalidEmail(ValueError):
    """An email whose key, recipient, template or context is not acceptable."""
