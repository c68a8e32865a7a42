from __future__ import annotations

import pytest
from taskmesh_chassis.events.topology import EventTopology, is_binding_key, topic_matches


def test_service_queues_are_named_after_the_exchange_and_the_service() -> None:
    queues = EventTopology().queues_of("notifications")

    assert queues.main == "taskmesh.events.notifications"
    assert queues.dead_letter == "taskmesh.events.notifications.dlq"
    assert queues.retry(5000) == "taskmesh.events.notifications.retry.5000ms"


def test_a_service_name_with_spaces_is_refused() -> None:
    with pytest.raises(ValueError):
        EventTopology().queues_of("my service")


@pytest.mark.parametrize(
    ("binding_key", "routing_key", "matches"),
    [
        ("task.created", "task.created", True),
        ("task.created", "task.updated", False),
        ("task.*", "task.created", True),
        ("task.*", "task", False),
        ("task.*", "task.created.extra", False),
        ("#", "user.role_changed", True),
        ("task.#", "task", True),
        ("task.#", "task.created.extra", True),
        ("*.deleted", "user.deleted", True),
        ("*.deleted", "user.deactivated", False),
        ("#.deleted", "a.b.deleted", True),
    ],
)
def test_topic_matching_follows_the_topic_exchange(
    binding_key: str, routing_key: str, matches: bool
) -> None:
    assert topic_matches(binding_key, routing_key) is matches


@pytest.mark.parametrize(
    ("key", "valid"),
    [("task.created", True), ("task.*", True), ("#", True), ("task.cre*", False), ("", False)],
)
def test_binding_keys_are_words_or_wildcards(key: str, valid: bool) -> None:
    assert is_binding_key(key) is valid
