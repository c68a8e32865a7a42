"""The mail catcher keeps every message as one .eml file."""

from __future__ import annotations

import asyncio
import email
import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

from taskmesh_localrun.mailcatcher import MailStore, start_mailcatcher


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stored_messages(mail_dir: Path) -> list[email.message.Message]:
    return [email.message_from_bytes(f.read_bytes()) for f in sorted(mail_dir.glob("*.eml"))]


def send(port: int, subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = "taskmesh@example.com"
    message["To"] = "ada@example.com"
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(message)


async def test_a_sent_message_is_stored_as_one_eml_file(tmp_path: Path) -> None:
    port = free_port()
    server = await start_mailcatcher("127.0.0.1", port, tmp_path)
    try:
        await asyncio.to_thread(send, port, "Reset your password", "token: abc123\n")
    finally:
        server.close()
        await server.wait_closed()

    messages = stored_messages(tmp_path)
    assert len(messages) == 1
    stored = messages[0]
    assert stored["Subject"] == "Reset your password"
    assert stored["Delivered-To"] == "ada@example.com"
    assert "token: abc123" in stored.get_payload()


async def test_messages_are_stored_in_files_whose_names_sort_in_arrival_order(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = await start_mailcatcher("127.0.0.1", port, tmp_path)
    try:
        for number in range(3):
            await asyncio.to_thread(send, port, f"message {number}", "hello\n")
    finally:
        server.close()
        await server.wait_closed()

    subjects = [message["Subject"] for message in stored_messages(tmp_path)]
    assert subjects == ["message 0", "message 1", "message 2"]


def test_store_never_overwrites_messages_arriving_at_once(tmp_path: Path) -> None:
    store = MailStore(tmp_path)

    message = b"Subject: x\r\n\r\nbody\r\n"
    paths = {store.store(message, "a@example.com", ["b@example.com"]) for _ in range(50)}

    assert len(paths) == 50
    assert not list(tmp_path.glob(".*.partial"))
