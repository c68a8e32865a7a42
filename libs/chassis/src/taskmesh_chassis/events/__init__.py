"""The event backbone: transactional outbox, relay to RabbitMQ, idempotent consumers.

envelope  the CloudEvents envelope around a protobuf payload: Event, encode, decode
outbox    Outbox.transaction(): a state change and its events in one MongoDB transaction
relay     OutboxRelay: publishes pending outbox events with confirms, marks them sent
background BackgroundRelay, BackgroundConsumer: start a relay or consumer once RabbitMQ
          answers, as a service's start-up and shutdown hooks
lease     which instance of a service runs the relay
consumer  EventConsumer: handlers applied once per event id, retries, dead letters
retry     RetryPolicy: attempts and the wait before each retry
delivery  AMQP headers for attempts and dead-letter reasons
topology  the exchange and each service's queues (main, retry, dead-letter)
broker    connect_broker(): the robust RabbitMQ connection
metrics   Prometheus metrics of all the above
settings  EventSettings: the EVENTS_* variables
dlq       dead-letter inspection and replay; `python -m taskmesh_chassis.events.dlq`
"""

from taskmesh_chassis.events.background import BackgroundConsumer, BackgroundRelay
from taskmesh_chassis.events.broker import connect_broker
from taskmesh_chassis.events.consumer import (
    EventConsumer,
    Handler,
    UnprocessableEvent,
    call_after_commit,
)
from taskmesh_chassis.events.envelope import Event, MalformedEvent, decode_event, encode_event
from taskmesh_chassis.events.outbox import Outbox, UnitOfWork
from taskmesh_chassis.events.relay import OutboxRelay
from taskmesh_chassis.events.retry import RetryPolicy
from taskmesh_chassis.events.settings import EventSettings
from taskmesh_chassis.events.topology import EventTopology

__all__ = [
    "BackgroundConsumer",
    "BackgroundRelay",
    "Event",
    "EventConsumer",
    "EventSettings",
    "EventTopology",
    "Handler",
    "MalformedEvent",
    "Outbox",
    "OutboxRelay",
    "RetryPolicy",
    "UnitOfWork",
    "UnprocessableEvent",
    "call_after_commit",
    "connect_broker",
    "decode_event",
    "encode_event",
]
