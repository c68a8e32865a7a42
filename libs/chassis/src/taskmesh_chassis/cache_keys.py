"""Redis keys more than one process writes, defined once so that their writers agree.

The gateway caches each user's task lists under a generation counter
(`taskmesh_gateway.task_list_cache`); the tasks service increments the same counter when it
changes a user's tasks outside any request (an account deletion's purge).
"""

from __future__ import annotations

from typing import Final

TASK_LIST_GENERATION_TTL_S: Final = 24 * 60 * 60
"""Set on every increment; far beyond any cached list's life, so a counter that expires
unused can restart from zero safely."""


def task_list_generation_key(user_id: str) -> str:
    """The Redis key of a user's task-list cache generation; `INCR` it to invalidate them all."""
    return f"taskmesh:tasks:gen:{user_id}"
