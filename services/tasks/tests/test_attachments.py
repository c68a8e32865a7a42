"""Attachments' rules, over fakes: who may do what, the size limit, the digest, safe names."""

from __future__ import annotations

import hashlib

import pytest
from taskmesh_tasks.domain import (
    AttachmentNotFound,
    AttachmentTooLarge,
    NotAllowed,
    Task,
    TaskNotFound,
    check_fields,
    safe_content_type,
    safe_filename,
)

from .fakes import ADMIN, ASSIGNEE, OWNER, STRANGER, Harness, byte_stream, make_harness


@pytest.fixture
def tasks() -> Harness:
    return make_harness(max_upload_bytes=10)


async def assigned_task(tasks: Harness) -> Task:
    values = check_fields({"title": "With files", "assignee_id": ASSIGNEE.user_id})
    return (await tasks.service.create_task(OWNER, values)).value


async def test_sha256_and_size_are_computed_while_streaming(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    written = await tasks.service.upload_attachment(
        OWNER, task.id, "notes.txt", "text/plain", byte_stream(b"hello", b"world")
    )

    assert written.value.size == 10
    assert written.value.sha256 == hashlib.sha256(b"helloworld").hexdigest()
    assert written.affected_user_ids == {OWNER.user_id, ASSIGNEE.user_id}


async def test_upload_over_the_limit_is_refused_and_nothing_is_kept(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    with pytest.raises(AttachmentTooLarge):
        await tasks.service.upload_attachment(
            OWNER, task.id, "big.bin", "", byte_stream(b"123456", b"78901")
        )

    assert tasks.attachments.files == {}
    assert tasks.attachments.uploads[0].aborted


async def test_upload_of_exactly_the_limit_is_accepted(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    written = await tasks.service.upload_attachment(
        OWNER, task.id, "ten.bin", "", byte_stream(b"12345", b"67890")
    )

    assert written.value.size == 10


async def test_assignee_may_list_and_download_but_not_upload_or_delete(tasks: Harness) -> None:
    task = await assigned_task(tasks)
    stored = (
        await tasks.service.upload_attachment(
            OWNER, task.id, "a.txt", "text/plain", byte_stream(b"abcdefg")
        )
    ).value

    listed = await tasks.service.list_attachments(ASSIGNEE, task.id)
    metadata, chunks = await tasks.service.download_attachment(ASSIGNEE, task.id, stored.id)
    content = b"".join([chunk async for chunk in chunks])

    assert [a.id for a in listed] == [stored.id]
    assert (metadata.id, content) == (stored.id, b"abcdefg")
    with pytest.raises(NotAllowed):
        await tasks.service.upload_attachment(ASSIGNEE, task.id, "b", "", byte_stream(b"x"))
    with pytest.raises(NotAllowed):
        await tasks.service.delete_attachment(ASSIGNEE, task.id, stored.id)


async def test_stranger_cannot_reach_attachments(tasks: Harness) -> None:
    task = await assigned_task(tasks)
    stored = (
        await tasks.service.upload_attachment(OWNER, task.id, "a", "", byte_stream(b"x"))
    ).value

    with pytest.raises(TaskNotFound):
        await tasks.service.download_attachment(STRANGER, task.id, stored.id)
    with pytest.raises(TaskNotFound):
        await tasks.service.upload_attachment(STRANGER, task.id, "b", "", byte_stream(b"x"))


async def test_attachment_of_another_task_is_not_found(tasks: Harness) -> None:
    task = await assigned_task(tasks)
    other = (await tasks.service.create_task(ADMIN, check_fields({"title": "Other"}))).value
    stored = (
        await tasks.service.upload_attachment(ADMIN, other.id, "a", "", byte_stream(b"x"))
    ).value

    with pytest.raises(AttachmentNotFound):
        await tasks.service.download_attachment(OWNER, task.id, stored.id)


async def test_deleting_a_task_deletes_its_attachments(tasks: Harness) -> None:
    task = await assigned_task(tasks)
    await tasks.service.upload_attachment(OWNER, task.id, "a", "", byte_stream(b"x"))

    await tasks.service.delete_task(OWNER, task.id)

    assert tasks.attachments.files == {}


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("evil\r\nname.txt", "evilname.txt"),
        ('quote".txt', "quote_.txt"),
        (".hidden", "hidden"),
        ("", "attachment"),
        ("../", "attachment"),
    ],
)
def test_filenames_are_made_safe(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_content_types_are_kept_only_when_well_formed() -> None:
    assert safe_content_type("Text/Plain; charset=utf-8") == "text/plain"
    assert safe_content_type("text/html\r\nX-Evil: 1") == "application/octet-stream"
    assert safe_content_type("") == "application/octet-stream"
