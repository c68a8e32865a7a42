from __future__ import annotations

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.context import RequestContext
from taskmesh_chassis.events.consumer import Accepted, HandlerTable, Rejected, classify
from taskmesh_chassis.events.delivery import DeadLetterReason
from taskmesh_chassis.events.envelope import Event, encode_event, new_event


async def on_task_deleted(event: Event, session: AsyncClientSession) -> None:
    """Stands for a service's handler; classification never calls it."""


async def on_any_user_event(event: Event, session: AsyncClientSession) -> None:
    """Stands for a service's handler; classification never calls it."""


HANDLERS = HandlerTable({"task.deleted": on_task_deleted, "user.*": on_any_user_event})


def encoded(event_type: str, payload: object) -> bytes:
    event = new_event(
        event_type,
        source="taskmesh/test",
        subject="s-1",
        payload=payload,  # type: ignore[arg-type]
        context=RequestContext(request_id="r-1"),
    )
    return encode_event(event)


def test_an_event_with_a_handler_is_accepted_with_that_handler() -> None:
    decision = classify(encoded("task.deleted", events_pb2.TaskDeleted(task_id="t")), HANDLERS)

    assert isinstance(decision, Accepted)
    assert decision.handler is on_task_deleted
    assert decision.event.payload == events_pb2.TaskDeleted(task_id="t")


def test_a_pattern_handler_takes_every_type_it_matches() -> None:
    decision = classify(encoded("user.deleted", events_pb2.UserDeleted()), HANDLERS)

    assert isinstance(decision, Accepted)
    assert decision.handler is on_any_user_event


def test_an_undecodable_message_is_rejected_as_malformed() -> None:
    decision = classify(b"\x00not an envelope", HANDLERS)

    assert isinstance(decision, Rejected)
    assert decision.reason is DeadLetterReason.MALFORMED
    assert decision.event is None


def test_an_event_without_a_handler_is_rejected_as_of_unknown_type() -> None:
    decision = classify(encoded("task.created", events_pb2.TaskCreated()), HANDLERS)

    assert isinstance(decision, Rejected)
    assert decision.reason is DeadLetterReason.UNKNOWN_TYPE
    assert decision.event is not None
    assert decision.event.type == "task.created"


def test_an_exact_key_wins_over_a_pattern() -> None:
    handlers = HandlerTable({"task.*": on_any_user_event, "task.deleted": on_task_deleted})

    assert handlers.handler_for("task.deleted") is on_task_deleted
    assert handlers.handler_for("task.created") is on_any_user_event


def test_the_binding_keys_are_the_handler_keys() -> None:
    assert HANDLERS.binding_keys == ["task.deleted", "user.*"]


def test_a_handler_table_refuses_an_invalid_key() -> None:
    with pytest.raises(ValueError):
        HandlerTable({"task created": on_task_deleted})


def test_a_handler_table_needs_a_handler() -> None:
    with pytest.raises(ValueError):
        HandlerTable({})
