"""`Idempotency-Key` on every API `POST`: the first answer is recorded and replayed for 24 h.

`IdempotencyMiddleware` (pure ASGI, inside admission, so it knows the caller) handles a `POST`
under `/api/v1/` that carries the header; every other request passes through untouched.

- The key is scoped to the verified caller (`user:{id}`), or for an anonymous request to the
  client address (`ip:{address}`): the same key from someone else is another key.
- The first request reserves the key atomically (`SET NX` of an in-progress marker that expires
  after `LOCK_TTL_S`, so a crashed instance cannot hold it for a day), runs, and records its
  status, the headers that matter and its body, before the answer leaves. Its fingerprint,
  the SHA-256 of method, path, query and body (a multipart body without its boundary), is
  computed while the route reads the body, so an upload streams through without being held.
- A repeat reads (and hashes, without keeping) its own body, then replays the record with
  `Idempotent-Replayed: true`; a different fingerprint is 422. While the first is in progress a
  repeat waits up to `WAIT_S` for it, then answers 409 with `Retry-After`.
- Nothing is recorded for a 5xx answer, nor for one given without reading the whole body (an
  upload refused as too large): the reservation is released and the client may retry.
- Records are sealed with AES-GCM under a key derived from the scope and the client's key,
  and stored under a name hashed from both: register, login and refresh answers carry tokens,
  which must not lie readable in Redis for a day.

Redis unreachable: 503 (the request is not run, as it could not be made idempotent).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Final

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskmesh_gateway.admission import UNKNOWN_CLIENT, Admission
from taskmesh_gateway.problems import RETRY_AFTER_S, problem_response

log = structlog.get_logger(__name__)

IDEMPOTENCY_HEADER: Final = b"idempotency-key"
REPLAYED_HEADER: Final = (b"idempotent-replayed", b"true")
RECORD_TTL_S: Final = 24 * 60 * 60
LOCK_TTL_S: Final = 120
"""How long an in-progress reservation survives the instance that holds it."""
WAIT_S: Final = 2.0
"""How long a repeat waits for the first request to finish before answering 409."""
POLL_INTERVAL_S: Final = 0.05
MAX_KEY_CHARS: Final = 255
MAX_RECORDED_BODY_BYTES: Final = 1024 * 1024
"""A larger answer is passed through unrecorded (no POST of this API answers that much)."""
DRAIN_BYTES: Final = 64 * 1024
"""Unread body the middleware reads itself to complete a fingerprint, before giving up."""
RECORDED_HEADERS: Final = frozenset(
    {b"content-type", b"location", b"etag", b"set-cookie", b"www-authenticate", b"allow"}
)
"""Headers of the first answer that a replay repeats; the rest (request id, rate limits,
security headers) are the replay's own."""

_IN_PROGRESS: Final = b"P"
_DONE: Final = b"D"
_NONCE_BYTES: Final = 12

_RESERVE_LUA: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return redis.call('GET', KEYS[1])
"""
"""Reserve the key, or answer what holds it (atomically: nothing can slip in between)."""
_COMPLETE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def declare_idempotency_key(document: dict[str, Any]) -> None:
    """Add the optional `Idempotency-Key` header to every API `POST` of an OpenAPI document.

    The middleware, not a route, reads the header, so FastAPI cannot see it; declaring it lets
    generated clients (the web app's) send it with their types.
    """
    for path, operations in document.get("paths", {}).items():
        post = operations.get("post")
        if path.startswith("/api/v1/") and post is not None:
            post.setdefault("parameters", []).append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "Repeat the same POST safely: within 24 h the same key from the same "
                        "caller replays the first answer (Idempotent-Replayed: true) and does "
                        "the effect once; the same key with another body is 422."
                    ),
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                }
            )


def parse_key(values: list[bytes]) -> str | None:
    """The key of an `Idempotency-Key` header: 1-255 printable ASCII characters, optionally in
    the quotes of a Structured Field string (the IETF draft's syntax); None when malformed."""
    if len(values) != 1:
        return None
    key = values[0].strip()
    if len(key) >= 2 and key.startswith(b'"') and key.endswith(b'"'):
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_CHARS or any(not 0x20 <= byte <= 0x7E for byte in key):
        return None
    return key.decode("ascii")


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """The first answer to a key, as a replay repeats it."""

    fingerprint: str
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def to_json(self) -> bytes:
        """Serialise for sealing."""
        return json.dumps(
            {
                "f": self.fingerprint,
                "s": self.status,
                "h": [
                    [name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in self.headers
                ],
                "b": base64.b64encode(self.body).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RecordedResponse:
        """The inverse of `to_json`."""
        fields = json.loads(data)
        return cls(
            fingerprint=fields["f"],
            status=int(fields["s"]),
            headers=[
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in fields["h"]
            ],
            body=base64.b64decode(fields["b"]),
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one (scope, key) pair is kept, and the cipher that seals its record."""

    name: str
    cipher: AESGCM

    @classmethod
    def of(cls, scope_id: str, key: str) -> Slot:
        """Derive the Redis key name and the sealing key; neither reveals the other or the key."""
        material = f"{scope_id}\x00{key}".encode()
        name = hashlib.sha256(b"taskmesh-idempotency-name\x00" + material).hexdigest()
        sealing_key = hashlib.sha256(b"taskmesh-idempotency-seal\x00" + material).digest()
        return cls(f"taskmesh:idem:{name}", AESGCM(sealing_key))

    def seal(self, record: RecordedResponse) -> bytes:
        """Encrypt a record, bound to this slot's name."""
        nonce = os.urandom(_NONCE_BYTES)
        return _DONE + nonce + self.cipher.encrypt(nonce, record.to_json(), self.name.encode())

    def open(self, sealed: bytes) -> RecordedResponse:
        """Decrypt a record sealed by `seal`."""
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        return RecordedResponse.from_json(
            self.cipher.decrypt(nonce, ciphertext, self.name.encode())
        )


@dataclass(frozen=True, slots=True)
class Holder:
    """What a key held when a request could not reserve it: None while in progress or gone."""

    record: RecordedResponse | None
    gone: bool = False


class IdempotencyStore:
    """Reservations and records of idempotency keys in Redis."""

    def __init__(
        self, redis: Redis, *, record_ttl_s: int = RECORD_TTL_S, lock_ttl_s: int = LOCK_TTL_S
    ) -> None:
        self._redis = redis
        self._record_ttl_ms = record_ttl_s * 1000
        self._lock_ttl_ms = lock_ttl_s * 1000
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._complete = redis.register_script(_COMPLETE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    async def reserve(self, slot: Slot, token: bytes) -> Holder | None:
        """Reserve the slot for the request holding `token`; None when reserved, else its holder."""
        answer = await self._reserve(
            keys=[slot.name], args=[_IN_PROGRESS + token, self._lock_ttl_ms]
        )
        if answer == 1:
            return None
        return self._holder(slot, answer)

    async def peek(self, slot: Slot) -> Holder:
        """What the slot holds now."""
        return self._holder(slot, await self._redis.get(slot.name))

    async def complete(self, slot: Slot, token: bytes, record: RecordedResponse) -> bool:
        """Replace our reservation by the record; False if the reservation was no longer ours."""
        done = await self._complete(
            keys=[slot.name], args=[_IN_PROGRESS + token, slot.seal(record), self._record_ttl_ms]
        )
        return bool(done)

    async def release(self, slot: Slot, token: bytes) -> None:
        """Drop our reservation, so the key can be used again."""
        await self._release(keys=[slot.name], args=[_IN_PROGRESS + token])

    @staticmethod
    def _holder(slot: Slot, value: object) -> Holder:
        if not isinstance(value, bytes):
            return Holder(None, gone=True)
        if value.startswith(_DONE):
            try:
                return Holder(slot.open(value))
            except (InvalidTag, ValueError, KeyError):
                log.warning("idempotency.unreadable_record")
                return Holder(None, gone=True)
        return Holder(None)


class IdempotencyMiddleware:
    """Records the first answer to each `Idempotency-Key` of an API `POST` and replays it."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/api/v1/") -> None:
        self.app = app
        self._prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, replay, or run and record."""
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(self._prefix)
        ):
            await self.app(scope, receive, send)
            return
        values = [value for name, value in scope["headers"] if name == IDEMPOTENCY_HEADER]
        if not values:
            await self.app(scope, receive, send)
            return
        key = parse_key(values)
        if key is None:
            detail = f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII characters."
            await problem_response(scope, 400, detail=detail)(scope, receive, send)
            return
        store: IdempotencyStore = scope["app"].state.idempotency
        slot = Slot.of(_scope_id(scope), key)
        token = os.urandom(16).hex().encode()
        try:
            holder = await store.reserve(slot, token)
        except RedisError as error:
            log.warning("idempotency.unavailable", error_type=type(error).__name__)
            await _unavailable(scope, receive, send)
            return
        if holder is None:
            first = _FirstRequest(self.app, store, slot, token, scope)
            await first.run(scope, receive, send)
        else:
            await _answer_repeat(store, slot, holder, scope, receive, send)


def _scope_id(scope: Scope) -> str:
    admission: Admission | None = scope.get("state", {}).get("admission")
    if admission is not None and admission.caller is not None:
        return f"user:{admission.caller.user_id}"
    client = scope.get("client")
    return f"ip:{client[0] if client else UNKNOWN_CLIENT}"


class Fingerprint:
    """SHA-256 of method, path, query and body, fed as the body streams in.

    A multipart body is hashed with its boundary left out: a client retrying an upload builds
    a new body with a new random boundary, and it is still the same request.
    """

    def __init__(self, scope: Scope) -> None:
        self._hash = hashlib.sha256()
        self._hash.update(f"{scope['method']} {scope['path']}?".encode())
        self._hash.update(scope.get("query_string", b""))
        self._hash.update(b"\n")
        self._boundary = _multipart_boundary(scope)
        self._tail = b""

    def update(self, chunk: bytes) -> None:
        """Hash the next piece of the body."""
        if not self._boundary:
            self._hash.update(chunk)
            return
        # Hold back what could be the start of a boundary split across two chunks.
        *complete, last = (self._tail + chunk).split(self._boundary)
        for piece in complete:
            self._hash.update(piece)
            self._hash.update(b"\x00boundary\x00")
        split_at = max(0, len(last) - (len(self._boundary) - 1))
        self._hash.update(last[:split_at])
        self._tail = last[split_at:]

    def hexdigest(self) -> str:
        """The fingerprint of everything fed so far."""
        final = self._hash.copy()
        final.update(self._tail)
        return final.hexdigest()


def _multipart_boundary(scope: Scope) -> bytes:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind, _, options = value.partition(b";")
            if kind.strip().lower() != b"multipart/form-data":
                return b""
            for option in options.split(b";"):
                key, _, boundary = option.strip().partition(b"=")
                if key.lower() == b"boundary":
                    return boundary.strip(b'"')
    return b""


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    await problem_response(scope, 503, headers=headers)(scope, receive, send)


class _FirstRequest:
    """Runs the request that reserved a key, and records its answer before sending it."""

    def __init__(
        self, app: ASGIApp, store: IdempotencyStore, slot: Slot, token: bytes, scope: Scope
    ) -> None:
        self._app = app
        self._store = store
        self._slot = slot
        self._token = token
        self._fingerprint = Fingerprint(scope)
        self._body_read = False
        self._start: Message | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._settled = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its body hashed on the way in and its answer held on the way out."""

        async def hashing_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self._fingerprint.update(message.get("body", b""))
                if not message.get("more_body", False):
                    self._body_read = True
            return message

        async def recording_send(message: Message) -> None:
            if self._settled:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._drain(hashing_receive)
                self._start = message
            elif message["type"] == "http.response.body":
                await self._collect(message, send)
            else:
                await send(message)

        try:
            await self._app(scope, hashing_receive, recording_send)
        finally:
            if not self._settled:
                await self._release()

    async def _drain(self, receive: Receive) -> None:
        # A route that answered without reading the body (a bodiless POST, a 415) still has its
        # fingerprint completed, as long as what is left is small.
        drained = 0
        while not self._body_read and drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))

    async def _collect(self, message: Message, send: Send) -> None:
        assert self._start is not None
        body: bytes = message.get("body", b"")
        self._chunks.append(body)
        self._size += len(body)
        if self._size > MAX_RECORDED_BODY_BYTES:
            await self._release()
            await self._flush(send, more_body=message.get("more_body", False))
            return
        if message.get("more_body", False):
            return
        status: int = self._start["status"]
        if status >= 500 or not self._body_read:
            await self._release()
        else:
            await self._record(status)
        await self._flush(send, more_body=False)

    async def _record(self, status: int) -> None:
        assert self._start is not None
        headers = [
            (name.lower(), value)
            for name, value in self._start.get("headers", ())
            if name.lower() in RECORDED_HEADERS
        ]
        record = RecordedResponse(
            self._fingerprint.hexdigest(), status, headers, b"".join(self._chunks)
        )
        self._settled = True
        try:
            if not await self._store.complete(self._slot, self._token, record):
                log.warning("idempotency.reservation_lost")
        except RedisError as error:
            # The effect is done: answer it. A retry within the lock's life gets 409, later
            # ones run again; that is the best a lost Redis allows.
            log.error("idempotency.record_failed", error_type=type(error).__name__)

    async def _release(self) -> None:
        self._settled = True
        try:
            await self._store.release(self._slot, self._token)
        except RedisError as error:
            log.warning("idempotency.release_failed", error_type=type(error).__name__)

    async def _flush(self, send: Send, *, more_body: bool) -> None:
        assert self._start is not None
        self._settled = True
        await send(self._start)
        await send(
            {"type": "http.response.body", "body": b"".join(self._chunks), "more_body": more_body}
        )
        self._chunks = []


async def _answer_repeat(
    store: IdempotencyStore, slot: Slot, holder: Holder, scope: Scope, receive: Receive, send: Send
) -> None:
    fingerprint = Fingerprint(scope)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        fingerprint.update(message.get("body", b""))
        if not message.get("more_body", False):
            break
    deadline = time.monotonic() + WAIT_S
    try:
        while holder.record is None and not holder.gone and time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL_S)
            holder = await store.peek(slot)
    except RedisError as error:
        log.warning("idempotency.unavailable", error_type=type(error).__name__)
        await _unavailable(scope, receive, send)
        return
    record = holder.record
    if record is None:
        log.info("idempotency.in_progress")
        detail = "A request with this Idempotency-Key is still in progress; retry shortly."
        headers = {"Retry-After": "1"}
        await problem_response(scope, 409, detail=detail, headers=headers)(scope, receive, send)
        return
    if record.fingerprint != fingerprint.hexdigest():
        log.info("idempotency.key_reused")
        detail = "This Idempotency-Key was already used for a different request."
        await problem_response(scope, 422, detail=detail)(scope, receive, send)
        return
    log.info("idempotency.replayed", status=record.status)
    await send(
        {
            "type": "http.response.start",
            "status": record.status,
            "headers": [
                *record.headers,
                (b"content-length", str(len(record.body)).encode()),
                REPLAYED_HEADER,
            ],
        }
    )
    await send({"type": "http.response.body", "body": record.body})
