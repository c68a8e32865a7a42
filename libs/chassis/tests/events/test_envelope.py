from __future__ import annotations

from datetime import UTC, datetime

import pytest
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.context import RequestContext
from taskmesh_chassis.events.envelope import (
    CONTENT_TYPE,
    Event,
    MalformedEvent,
    decode_event,
    encode_event,
    new_event,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def task_created() -> Event:
    payload = events_pb2.TaskCreated(
        task=tasks_pb2.Task(id="task-1", title="Write the docs"), actor_id="user-7"
    )
    context = RequestContext(request_id="req-42", traceparent=TRACEPARENT)
    return new_event(
        "task.created",
        source="taskmesh/tasks",
        subject="task-1",
        payload=payload,
        context=context,
    )


def envelope_bytes(**fields: object) -> bytes:
    envelope = events_pb2.EventEnvelope(
        id="e-1",
        type="task.deleted",
        source="taskmesh/tasks",
        spec_version="1.0",
        subject="task-1",
        data_content_type="application/json",
        data_schema="taskmesh.events.v1.TaskDeleted",
        data=b'{"task_id":"task-1"}',
    )
    for name, value in fields.items():
        setattr(envelope, name, value)
    return envelope.SerializeToString()


def test_an_encoded_event_decodes_to_the_same_event() -> None:
    event = task_created()

    decoded = decode_event(encode_event(event))

    assert decoded == event


def test_new_event_carries_the_request_id_and_trace_context() -> None:
    event = task_created()

    assert (event.request_id, event.traceparent) == ("req-42", TRACEPARENT)
    assert event.source == "taskmesh/tasks"
    assert event.time.tzinfo is not None


def test_new_events_get_distinct_ids() -> None:
    assert task_created().id != task_created().id


def test_payload_travels_as_json_with_the_original_field_names() -> None:
    envelope = events_pb2.EventEnvelope()
    envelope.ParseFromString(encode_event(task_created()))

    assert envelope.spec_version == "1.0"
    assert envelope.data_content_type == "application/json"
    assert envelope.data_schema == "taskmesh.events.v1.TaskCreated"
    assert b'"actor_id":"user-7"' in envelope.data
    assert CONTENT_TYPE == "application/protobuf"


def test_time_survives_the_round_trip_to_the_microsecond() -> None:
    event = task_created()

    assert decode_event(encode_event(event)).time == event.time


def test_unknown_payload_fields_are_ignored() -> None:
    body = envelope_bytes(data=b'{"task_id":"task-1","added_later":true}')

    assert decode_event(body).payload == events_pb2.TaskDeleted(task_id="task-1")


def test_new_event_refuses_a_payload_of_another_type() -> None:
    with pytest.raises(TypeError):
        new_event(
            "task.deleted",
            source="taskmesh/tasks",
            subject="task-1",
            payload=events_pb2.TaskCreated(),
        )


def test_new_event_refuses_a_wildcard_type() -> None:
    with pytest.raises(ValueError):
        new_event("task.*", source="taskmesh/tasks", subject="t", payload=events_pb2.TaskDeleted())


def test_new_event_refuses_an_empty_subject() -> None:
    with pytest.raises(ValueError):
        new_event(
            "task.deleted", source="taskmesh/tasks", subject="", payload=events_pb2.TaskDeleted()
        )


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"\xff\xff\xff", "undecodable envelope"),
        (b"", "envelope without id, type, source, subject"),
        (envelope_bytes(id=""), "envelope without id"),
        (envelope_bytes(spec_version="0.3"), "unsupported spec_version"),
        (envelope_bytes(type="Task Deleted"), "invalid event type"),
        (envelope_bytes(data_content_type="text/xml"), "unsupported data_content_type"),
        (envelope_bytes(data_schema="taskmesh.events.v1.Nope"), "unknown data_schema"),
        (envelope_bytes(data=b"{not json"), "undecodable taskmesh.events.v1.TaskDeleted data"),
        (envelope_bytes(data=b"\xff\xfe"), "undecodable taskmesh.events.v1.TaskDeleted data"),
    ],
)
def test_a_malformed_envelope_is_reported_with_what_is_wrong(body: bytes, complaint: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        decode_event(body)

    assert str(raised.value).startswith(complaint)


def test_event_time_is_utc() -> None:
    event = decode_event(envelope_bytes())

    assert event.time == datetime(1970, 1, 1, tzinfo=UTC)
