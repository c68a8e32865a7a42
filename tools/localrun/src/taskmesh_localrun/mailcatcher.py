"""A local SMTP server that keeps every message as one .eml file.

Run as `python -m taskmesh_localrun.mailcatcher --port 1025 --mail-dir .data/mail`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP

log = structlog.get_logger("mailcatcher")


class MailStore:
    """Writes messages into a directory, one .eml file each, in arrival order by name."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self._sequence = itertools.count(1)

    def store(self, content: bytes, mail_from: str, rcpt_tos: Sequence[str]) -> Path:
        """Write one message (with Return-Path and Delivered-To added) and return its file."""
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{next(self._sequence):06d}-{secrets.token_hex(3)}.eml"
        trace = [f"Return-Path: <{mail_from}>"] + [f"Delivered-To: {rcpt}" for rcpt in rcpt_tos]
        message = "".join(f"{line}\r\n" for line in trace).encode() + content
        final = self.mail_dir / name
        partial = self.mail_dir / f".{name}.partial"
        partial.write_bytes(message)
        # Readers listing *.eml never see a half-written message.
        os.replace(partial, final)
        return final


class StoringHandler:
    """aiosmtpd handler: accept every message and store it."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message carried by this SMTP transaction."""
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        path = await asyncio.to_thread(
            self.store.store, content, envelope.mail_from or "", list(envelope.rcpt_tos)
        )
        log.info("mail.stored", file=path.name, mail_from=envelope.mail_from, to=envelope.rcpt_tos)
        return "250 Message accepted for delivery"


async def start_mailcatcher(host: str, port: int, mail_dir: Path) -> asyncio.Server:
    """Listen for SMTP on host:port, storing messages under mail_dir."""
    handler = StoringHandler(MailStore(mail_dir))
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="taskmesh-mailcatcher", decode_data=False),
        host=host,
        port=port,
    )


async def _serve(host: str, port: int, mail_dir: Path) -> None:
    server = await start_mailcatcher(host, port, mail_dir)
    log.info("mailcatcher.listening", host=host, port=port, mail_dir=str(mail_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    log.info("mailcatcher.stopped")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the mail catcher until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m taskmesh_localrun.mailcatcher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--mail-dir", type=Path, default=Path(".data/mail"))
    args = parser.parse_args(argv)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ]
    )
    asyncio.run(_serve(args.host, args.port, args.mail_dir))


if __name__ == "__main__":
    main()
