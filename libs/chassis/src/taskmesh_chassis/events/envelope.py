"""The event envelope: CloudEvents 1.0 attributes around a protobuf payload (events.proto).

On the wire an event is an `EventEnvelope` in the protobuf binary format; its `data` is the
payload message in the protobuf JSON mapping with the original field names, and
`data_schema` names the payload's message type so any consumer can decode it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from taskmesh.events.v1 import events_pb2

from taskmesh_chassis.context import RequestContext, current_request
from taskmesh_chassis.tracing import TRACEPARENT_HEADER, TRACESTATE_HEADER, trace_headers

SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/protobuf"
DATA_CONTENT_TYPE: Final = "application/json"

# A routing key of dot-separated words; wildcards belong to bindings, never to event types.
_EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")

# The payload message of each event type of the architecture (events.proto), by full name.
PAYLOAD_SCHEMAS: Final[Mapping[str, str]] = {
    event_type: f"taskmesh.events.v1.{message}"
    for event_type, message in {
        "user.registered": "UserRegistered",
        "user.role_changed": "UserRoleChanged",
        "user.deactivated": "UserDeactivated",
        "user.reactivated": "UserReactivated",
        "user.deleted": "UserDeleted",
        "user.password_changed": "UserPasswordChanged",
        "user.password_reset_requested": "UserPasswordResetRequested",
        "user.profile_updated": "UserProfileUpdated",
        "task.created": "TaskCreated",
        "task.updated": "TaskUpdated",
        "task.assigned": "TaskAssigned",
        "task.completed": "TaskCompleted",
        "task.deleted": "TaskDeleted",
        "notification.created": "NotificationCreated",
        "gateway.request_records": "RequestRecordBatch",
    }.items()
}


class MalformedEvent(Exception):
    """A message that no retry can make processable: undecodable, incomplete, unknown payload."""


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded event: the envelope's attributes and its payload message."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    payload: Message
    schema_version: int = 1
    traceparent: str = ""
    tracestate: str = ""
    request_id: str = ""

    @property
    def data_schema(self) -> str:
        """Full name of the payload message, e.g. `taskmesh.events.v1.TaskCreated`."""
        return self.payload.DESCRIPTOR.full_name

    def log_fields(self) -> dict[str, str]:
        """The fields a log line about this event carries."""
        fields = {"event_id": self.id, "event_type": self.type, "subject": self.subject}
        if self.request_id:
            fields["request_id"] = self.request_id
        return fields


def new_event(
    event_type: str,
    *,
    source: str,
    subject: str,
    payload: Message,
    schema_version: int = 1,
    context: RequestContext | None = None,
) -> Event:
    """Make an event with a fresh id and the current time, carrying the request's context.

    The trace context is the current span's (the one whose work causes the event), or else
    that of the request (`context`, by default the bound one), if it has one.
    """
    if not is_event_type(event_type):
        raise ValueError(f"{event_type!r} is not an event type (dot-separated lower-case words)")
    expected = PAYLOAD_SCHEMAS.get(event_type)
    if expected is not None and payload.DESCRIPTOR.full_name != expected:
        raise TypeError(f"{event_type} carries {expected}, not {payload.DESCRIPTOR.full_name}")
    if not subject:
        raise ValueError("an event needs a subject (the id of the entity it is about)")
    request = context if context is not None else current_request()
    trace = trace_headers() if context is None else {}
    if not trace and request is not None and request.traceparent:
        trace = {TRACEPARENT_HEADER: request.traceparent}
    return Event(
        id=str(uuid.uuid4()),
        type=event_type,
        source=source,
        subject=subject,
        time=datetime.now(UTC),
        payload=payload,
        schema_version=schema_version,
        traceparent=trace.get(TRACEPARENT_HEADER, ""),
        tracestate=trace.get(TRACESTATE_HEADER, ""),
        request_id=request.request_id if request else "",
    )


def is_event_type(value: str) -> bool:
    """Tell whether `value` is a valid event type such as `task.created`."""
    return _EVENT_TYPE.fullmatch(value) is not None


def encode_event(event: Event) -> bytes:
    """Serialize an event as an `EventEnvelope` in the protobuf binary format."""
    data = json_format.MessageToDict(event.payload, preserving_proto_field_name=True)
    envelope = events_pb2.EventEnvelope(
        id=event.id,
        type=event.type,
        source=event.source,
        spec_version=SPEC_VERSION,
        subject=event.subject,
        data_content_type=DATA_CONTENT_TYPE,
        data_schema=event.data_schema,
        data=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        schema_version=event.schema_version,
        traceparent=event.traceparent,
        tracestate=event.tracestate,
        request_id=event.request_id,
    )
    envelope.time.FromDatetime(event.time)
    body: bytes = envelope.SerializeToString()
    return body


def decode_event(body: bytes) -> Event:
    """Parse an `EventEnvelope`; raise MalformedEvent saying what is wrong with it."""
    envelope = events_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(body)
    except DecodeError as error:
        raise MalformedEvent(f"undecodable envelope: {error}") from None
    missing = [name for name in ("id", "type", "source", "subject") if not getattr(envelope, name)]
    if missing:
        raise MalformedEvent(f"envelope without {', '.join(missing)}")
    if envelope.spec_version != SPEC_VERSION:
        raise MalformedEvent(f"unsupported spec_version {envelope.spec_version!r}")
    if not is_event_type(envelope.type):
        raise MalformedEvent(f"invalid event type {envelope.type!r}")
    if envelope.data_content_type != DATA_CONTENT_TYPE:
        raise MalformedEvent(f"unsupported data_content_type {envelope.data_content_type!r}")
    return Event(
        id=envelope.id,
        type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        time=envelope.time.ToDatetime(tzinfo=UTC),
        payload=_decode_payload(envelope.data_schema, envelope.data),
        schema_version=envelope.schema_version,
        traceparent=envelope.traceparent,
        tracestate=envelope.tracestate,
        request_id=envelope.request_id,
    )


def _decode_payload(data_schema: str, data: bytes) -> Message:
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(data_schema)
    except KeyError:
        raise MalformedEvent(f"unknown data_schema {data_schema!r}") from None
    payload = message_factory.GetMessageClass(descriptor)()
    try:
        # Unknown fields are ignored so that a producer may add fields before its consumers.
        json_format.Parse(data.decode(), payload, ignore_unknown_fields=True)
    except (UnicodeDecodeError, json_format.ParseError) as error:
        raise MalformedEvent(f"undecodable {data_schema} data: {error}") from None
    return payload
