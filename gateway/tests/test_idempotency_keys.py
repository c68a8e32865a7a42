"""Idempotency-Key syntax and scoping, without Redis."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.admission import Admission
from taskmesh_gateway.idempotency import (
    Fingerprint,
    RecordedResponse,
    Slot,
    _scope_id,
    parse_key,
)
from taskmesh_gateway.rate_limits import Quota, RateLimitPolicy


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b"abc", "abc"),
        (b'"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        (b"a" * 255, "a" * 255),
        (b"", None),
        (b'""', None),
        (b"a" * 256, None),
        (b"caf\xc3\xa9", None),
        (b"tab\there", None),
    ],
)
def test_keys_are_1_to_255_printable_ascii_characters(raw: bytes, parsed: str | None) -> None:
    assert parse_key([raw]) == parsed


def test_two_key_headers_are_malformed() -> None:
    assert parse_key([b"a", b"b"]) is None


def test_keys_are_scoped_to_the_caller_or_else_the_client_address() -> None:
    caller = Caller("u1", "user", "jti", "sid", 0.0, 900.0, "t")
    quota = Quota(RateLimitPolicy("user", 100), True, 1, 60)
    signed_in = {"state": {"admission": Admission(caller, None, quota)}, "client": ("10.0.0.1", 1)}
    anonymous = {"state": {"admission": Admission(None, None, quota)}, "client": ("10.0.0.1", 1)}

    assert _scope_id(signed_in) == f"user:{caller.user_id}"
    assert _scope_id(anonymous) == "ip:10.0.0.1"


def test_a_sealed_record_opens_only_in_its_own_slot() -> None:
    record = RecordedResponse("f" * 64, 201, [(b"location", b"/api/v1/tasks/1")], b"{}")
    slot = Slot.of("user:u1", "key")
    sealed = slot.seal(record)

    assert slot.open(sealed) == record
    with pytest.raises(InvalidTag):
        Slot.of("user:u2", "key").open(sealed)


def test_slot_names_reveal_neither_scope_nor_key() -> None:
    name = Slot.of("user:u1", "my-key").name

    assert name.startswith("taskmesh:idem:")
    assert "u1" not in name
    assert "my-key" not in name


def fingerprint(body: bytes, content_type: bytes, chunk_bytes: int, path: str = "/p") -> str:
    scope = {
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(b"content-type", content_type)],
    }
    hasher = Fingerprint(scope)
    for start in range(0, len(body), chunk_bytes):
        hasher.update(body[start : start + chunk_bytes])
    return hasher.hexdigest()


def upload_body(boundary: bytes, content: bytes) -> bytes:
    return (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        + content
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 64, 100_000])
def test_a_multipart_fingerprint_ignores_the_boundary_and_the_chunking(chunk_bytes: int) -> None:
    first = fingerprint(
        upload_body(b"aaaa1111", b"data"), b"multipart/form-data; boundary=aaaa1111", 100_000
    )
    retry = fingerprint(
        upload_body(b"bbbbbb2222", b"data"),
        b'multipart/form-data; boundary="bbbbbb2222"',
        chunk_bytes,
    )

    assert retry == first


def test_a_multipart_fingerprint_sees_the_content() -> None:
    first = fingerprint(upload_body(b"b1", b"data"), b"multipart/form-data; boundary=b1", 5)
    other = fingerprint(upload_body(b"b1", b"date"), b"multipart/form-data; boundary=b1", 5)

    assert other != first


def test_a_json_fingerprint_sees_every_byte_and_the_path() -> None:
    body = b'{"title": "x"}'

    assert fingerprint(body, b"application/json", 3) == fingerprint(body, b"application/json", 50)
    assert fingerprint(body, b"application/json", 3) != fingerprint(
        body + b" ", b"application/json", 3
    )
    assert fingerprint(body, b"application/json", 3) != fingerprint(
        body, b"application/json", 3, path="/q"
    )
