"""The SMTP server emails go to, as named by `SMTP_URL`, and sending one message to it.

Schemes (docs/notifications.md, "Email"):

- `smtp://host[:25]` — STARTTLS when the server offers it, plain otherwise; no credentials,
  since they could cross the network in clear.
- `smtp+starttls://[user:password@]host[:587]` — STARTTLS required before anything else.
- `smtps://[user:password@]host[:465]` — TLS from the first byte.

The server's certificate is always verified (the system's CAs, or `SMTP_CA_FILE`); a
certificate that does not verify fails the attempt, it never falls back to plain text.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import aiosmtplib


class SmtpSecurity(StrEnum):
    """How the connection to the SMTP server is protected, by URL scheme."""

    STARTTLS_IF_OFFERED = "smtp"
    STARTTLS = "smtp+starttls"
    TLS = "smtps"


_DEFAULT_PORTS: Final = {
    SmtpSecurity.STARTTLS_IF_OFFERED: 25,
    SmtpSecurity.STARTTLS: 587,
    SmtpSecurity.TLS: 465,
}

# What an attempt can fail with: the server's answers, the network, TLS, the deadline.
SMTP_ERRORS: Final = (aiosmtplib.SMTPException, OSError, TimeoutError)


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send: parsed from `SMTP_URL`; the password never appears in its repr."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """Parse an SMTP URL; raise ValueError naming the problem (never quoting the URL)."""
    parts = urlsplit(url.strip())
    try:
        security = SmtpSecurity(parts.scheme.lower())
    except ValueError:
        schemes = ", ".join(f"{scheme}://" for scheme in SmtpSecurity)
        raise ValueError(f"SMTP_URL: the scheme must be one of {schemes}") from None
    if not parts.hostname:
        raise ValueError("SMTP_URL: a host is required")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("SMTP_URL: only scheme, credentials, host and port are allowed")
    try:
        port = parts.port or _DEFAULT_PORTS[security]
    except ValueError:
        raise ValueError("SMTP_URL: the port must be a number from 1 to 65535") from None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None) or username == "":
        raise ValueError("SMTP_URL: credentials need both a user name and a password")
    if username is not None and security is SmtpSecurity.STARTTLS_IF_OFFERED:
        raise ValueError(
            "SMTP_URL: credentials need smtp+starttls:// or smtps://, "
            "so that they are never sent unencrypted"
        )
    return SmtpServer(parts.hostname, port, security, username, password)


class SmtpClient:
    """Sends messages to one SMTP server, a connection per message."""

    def __init__(self, server: SmtpServer, *, timeout_s: float, ca_file: Path | None) -> None:
        self.server = server
        self._timeout_s = timeout_s
        # Built once: loading the CA store is not free.
        self._tls_context = ssl.create_default_context(
            cafile=str(ca_file) if ca_file is not None else None
        )

    async def send(self, message: MimeMessage, *, sender: str, recipient: str) -> None:
        """Hand `message` to the server for `recipient`; raise one of SMTP_ERRORS if refused.

        `timeout_s` bounds each step (connect, each command); the caller bounds the whole.
        """
        server = self.server
        start_tls = {
            SmtpSecurity.STARTTLS_IF_OFFERED: None,  # aiosmtplib: upgrade if offered
            SmtpSecurity.STARTTLS: True,
            SmtpSecurity.TLS: False,
        }[server.security]
        await aiosmtplib.send(
            message,
            sender=sender,
            recipients=[recipient],
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.security is SmtpSecurity.TLS,
            start_tls=start_tls,
            tls_context=self._tls_context,
            timeout=self._timeout_s,
        )


def is_permanent(error: BaseException) -> bool:
    """Whether the server refused the message itself for good (5xx): retrying cannot help.

    Connection, TLS, authentication and 4xx problems are transient or a matter of
    configuration, and are retried.
    """
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(
            _is_permanent_code(refusal.code) for refusal in error.recipients
        )
    if isinstance(
        error,
        aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError,
    ):
        return _is_permanent_code(error.code)
    return False


def _is_permanent_code(code: int) -> bool:
    return 500 <= code < 600
