"""The EMAIL_* and SMTP_* variables, for the notifications service's settings class.

A mixin, like the chassis' EventSettings:

    class NotificationsSettings(GrpcServiceSettings, EventSettings, MailSettings): ...
"""

from __future__ import annotations

from email.utils import parseaddr
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, field_validator
from pydantic_settings import BaseSettings

from taskmesh_notifications.mail.smtp import SmtpServer, parse_smtp_url


class MailSettings(BaseSettings):
    """Where emails go, what they say they are from, and how hard delivery tries."""

    # A secret because it may carry the server's credentials.
    smtp_url: SecretStr = SecretStr("smtp://127.0.0.1:1025")
    # CA certificates (PEM) that sign the SMTP server's certificate, instead of the system's.
    smtp_ca_file: FilePath | None = None
    # Bounds each SMTP step (connect, each command); a whole attempt gets three times this.
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=300)
    email_from: str = "taskmesh <no-reply@taskmesh.local>"
    # Where links in emails point: the public address of the gateway's web app.
    public_base_url: str = "http://127.0.0.1:8000"
    # The wait before each retry, as a JSON list; an email is attempted len + 1 times.
    email_retry_delays_s: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
    # How often the sender looks for due emails it was not woken for.
    email_sweep_interval_s: float = Field(default=5.0, gt=0, le=300)

    @field_validator("smtp_url")
    @classmethod
    def _valid_smtp_url(cls, value: SecretStr) -> SecretStr:
        parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("email_from")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        _, address = parseaddr(value)
        local, _, domain = address.rpartition("@")
        if not local or not domain or any(char in value for char in "\r\n"):
            raise ValueError(
                "EMAIL_FROM must be an address, e.g. 'taskmesh <no-reply@example.com>'"
            )
        return value

    @field_validator("public_base_url")
    @classmethod
    def _valid_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("PUBLIC_BASE_URL must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("PUBLIC_BASE_URL must not have a query or a fragment")
        return value.rstrip("/")

    @field_validator("email_retry_delays_s")
    @classmethod
    def _valid_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("EMAIL_RETRY_DELAYS_S must not be negative")
        return value

    @property
    def smtp_server(self) -> SmtpServer:
        """The SMTP server `smtp_url` names (validated when the settings were read)."""
        return parse_smtp_url(self.smtp_url.get_secret_value())

    @property
    def sender_address(self) -> str:
        """The bare address of `email_from`, for the SMTP envelope."""
        return parseaddr(self.email_from)[1]

    @property
    def email_max_attempts(self) -> int:
        """How many times an email is attempted before it is marked failed."""
        return len(self.email_retry_delays_s) + 1
