"""The hub of one instance's sockets: who gets what, slow clients, expiry and revocation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.realtime.hub import (
    GOING_AWAY,
    REVOCATION_UNCHECKED,
    SLOW_CLIENT,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    Hub,
)
from taskmesh_gateway.realtime.messages import Push

GRACE_S = 10.0


class FakeRevocations:
    """Answers from a set of revoked token ids; records each call; can be made to fail."""

    def __init__(self) -> None:
        self.revoked_ids: set[str] = set()
        self.calls: list[list[str]] = []
        self.failing = False

    async def revoked(self, callers: Sequence[Caller]) -> set[str]:
        self.calls.append([caller.token_id for caller in callers])
        if self.failing:
            raise RedisConnectionError("Redis is down")
        return {caller.token_id for caller in callers} & self.revoked_ids


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def revocations() -> FakeRevocations:
    return FakeRevocations()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(revocations: FakeRevocations, clock: Clock) -> Hub:
    return Hub(
        revocations,
        send_queue_size=3,
        check_interval_s=1.0,
        revocation_grace_s=GRACE_S,
        clock=clock,
    )


def caller(user_id: str, *, expires_in_s: float = 900.0, token_id: str | None = None) -> Caller:
    now = time.time()
    return Caller(
        user_id=user_id,
        role="user",
        token_id=token_id or uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        issued_at=now,
        expires_at=now + expires_in_s,
        token="token",
    )


def push(*recipients: str, text: str = "{}") -> Push:
    return Push("task.updated", frozenset(recipients), text, time.time())


async def test_a_message_reaches_every_socket_of_its_recipients_and_no_other(hub: Hub) -> None:
    alice_phone, alice_laptop = hub.attach(caller("alice")), hub.attach(caller("alice"))
    bob = hub.attach(caller("bob"))
    carol = hub.attach(caller("carol"))

    hub.deliver(push("alice", "bob", text="m1"))

    assert [s.queue.get_nowait().text for s in (alice_phone, alice_laptop, bob)] == ["m1"] * 3
    assert carol.queue.empty()


async def test_a_detached_socket_receives_nothing_more(hub: Hub) -> None:
    socket = hub.attach(caller("alice"))
    hub.detach(socket)

    hub.deliver(push("alice"))

    assert socket.queue.empty()
    assert hub.subscribers() == []


async def test_a_full_queue_closes_its_socket_only(hub: Hub) -> None:
    slow, fast = hub.attach(caller("alice")), hub.attach(caller("bob"))

    for number in range(4):
        hub.deliver(push("alice", "bob", text=f"m{number}"))
        fast.queue.get_nowait()

    assert slow.closing.result() == SLOW_CLIENT
    assert slow.queue.qsize() == 3
    assert not fast.closing.done()


async def test_a_closing_socket_is_sent_nothing_more(hub: Hub) -> None:
    socket = hub.attach(caller("alice"))
    socket.close(TOKEN_REVOKED)

    hub.deliver(push("alice"))

    assert socket.queue.empty()


async def test_an_expired_token_closes_its_socket_with_4001(hub: Hub, clock: Clock) -> None:
    expiring = hub.attach(caller("alice", expires_in_s=60))
    valid = hub.attach(caller("alice", expires_in_s=120))
    clock.now = expiring.caller.expires_at

    await hub.check_tokens()

    assert expiring.closing.result() == TOKEN_EXPIRED
    assert TOKEN_EXPIRED.code == 4001
    assert not valid.closing.done()


async def test_a_revoked_token_closes_its_socket_with_4001(
    hub: Hub, revocations: FakeRevocations
) -> None:
    revoked = hub.attach(caller("alice"))
    kept = hub.attach(caller("alice"))
    revocations.revoked_ids.add(revoked.caller.token_id)

    await hub.check_tokens()

    assert revoked.closing.result() == TOKEN_REVOKED
    assert TOKEN_REVOKED.code == 4001
    assert not kept.closing.done()


async def test_one_check_asks_once_for_all_sockets_each_token_once(
    hub: Hub, revocations: FakeRevocations
) -> None:
    shared, other = caller("alice"), caller("bob")
    hub.attach(shared)
    hub.attach(shared)
    hub.attach(other)

    await hub.check_tokens()

    [asked] = revocations.calls
    assert sorted(asked) == sorted([shared.token_id, other.token_id])


async def test_without_sockets_nothing_is_asked(hub: Hub, revocations: FakeRevocations) -> None:
    await hub.check_tokens()

    assert revocations.calls == []


async def test_sockets_stay_open_while_revocation_is_briefly_unchecked(
    hub: Hub, revocations: FakeRevocations, clock: Clock
) -> None:
    socket = hub.attach(caller("alice"))
    revocations.failing = True
    clock.now += GRACE_S / 2

    await hub.check_tokens()

    assert not socket.closing.done()


async def test_sockets_close_once_revocation_is_unchecked_for_the_grace_period(
    hub: Hub, revocations: FakeRevocations, clock: Clock
) -> None:
    socket = hub.attach(caller("alice"))
    clock.now += GRACE_S / 2
    await hub.check_tokens()
    revocations.failing = True
    clock.now += GRACE_S - 0.1
    await hub.check_tokens()
    assert not socket.closing.done()

    clock.now += 0.2
    await hub.check_tokens()

    assert socket.closing.result() == REVOCATION_UNCHECKED
    assert REVOCATION_UNCHECKED.code == 1013


async def test_stopping_closes_every_socket_going_away(hub: Hub) -> None:
    sockets = [hub.attach(caller("alice")), hub.attach(caller("bob"))]
    hub.start()

    await hub.stop()

    assert [socket.closing.result() for socket in sockets] == [GOING_AWAY, GOING_AWAY]
