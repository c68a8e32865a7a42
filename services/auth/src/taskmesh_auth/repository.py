"""MongoDB access of the auth service: its collections and the indexes they need."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel
from taskmesh_chassis.mongo import IndexPlan

USERS = "users"

INDEXES: IndexPlan = {
    # One account per email; emails are stored lower-cased, so this also makes them
    # unique case-insensitively.
    USERS: [IndexModel([("email", ASCENDING)], unique=True)],
}
