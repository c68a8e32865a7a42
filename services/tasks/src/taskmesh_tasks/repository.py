"""MongoDB access of the tasks service: its collections and the indexes they need."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from taskmesh_chassis.mongo import IndexPlan

TASKS = "tasks"

INDEXES: IndexPlan = {
    # A user's task list, newest first: the default listing.
    TASKS: [IndexModel([("owner_id", ASCENDING), ("created_at", DESCENDING)])],
}
