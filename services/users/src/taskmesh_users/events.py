"""The event the users service publishes, `user.profile_updated`, built from a profile."""

from __future__ import annotations

from typing import Final

from google.protobuf.message import Message
from taskmesh.events.v1 import events_pb2

from taskmesh_users.domain import Profile

EVENT_SOURCE: Final = "taskmesh/users"

USER_PROFILE_UPDATED: Final = "user.profile_updated"


def profile_updated(profile: Profile) -> Message:
    """A user changed their profile: the profile after the change (what notifications needs)."""
    return events_pb2.UserProfileUpdated(
        user_id=profile.id,
        email=profile.email,
        name=profile.name,
        timezone=profile.timezone,
        email_notifications=profile.email_notifications,
    )
