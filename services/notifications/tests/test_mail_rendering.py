"""Email templates, the MIME message and the SMTP settings, without any server."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage

import pydantic
import pytest
from pydantic import SecretStr
from taskmesh_notifications.mail import EmailMessage, EmailTemplate, InvalidEmail, render
from taskmesh_notifications.mail.message import compose_message, message_id
from taskmesh_notifications.mail.settings import MailSettings
from taskmesh_notifications.mail.smtp import SmtpSecurity, SmtpServer, parse_smtp_url

BASE_URL = "https://taskmesh.example.com"
TASK_ID = "65a1b2c3d4e5f60718293a4b"

CONTEXTS: dict[EmailTemplate, dict[str, str]] = {
    EmailTemplate.WELCOME: {"name": "Ada"},
    EmailTemplate.PASSWORD_RESET: {"token": "rst_a+b/c=", "expires_at": "2026-11-28T14:00:00Z"},
    EmailTemplate.TASK_ASSIGNED: {
        "name": "Ada",
        "task_id": TASK_ID,
        "task_title": "Write the report",
        "assigned_by": "Grace",
    },
    EmailTemplate.TASK_DUE_SOON: {
        "name": "Ada",
        "task_id": TASK_ID,
        "task_title": "Write the report",
        "due_at": "2026-11-29 14:00 Europe/Paris",
    },
}


@pytest.mark.parametrize("template", list(EmailTemplate))
def test_every_template_renders_a_subject_and_both_bodies(template: EmailTemplate) -> None:
    rendered = render(template, CONTEXTS[template], public_base_url=BASE_URL)

    assert rendered.subject
    assert "\n" not in rendered.subject
    assert f"{BASE_URL}/" in rendered.text
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert f"<title>{rendered.subject}</title>" in rendered.html


def test_welcome_greets_the_user_by_name() -> None:
    rendered = render(EmailTemplate.WELCOME, {"name": "Ada"}, public_base_url=BASE_URL)

    assert rendered.subject == "Welcome to taskmesh"
    assert rendered.text.startswith("Hi Ada,\n")
    assert "<p>Hi Ada,</p>" in rendered.html


def test_reset_email_has_the_token_on_a_line_of_its_own() -> None:
    rendered = render(
        EmailTemplate.PASSWORD_RESET,
        CONTEXTS[EmailTemplate.PASSWORD_RESET],
        public_base_url=BASE_URL,
    )

    assert "token: rst_a+b/c=" in rendered.text.splitlines()
    assert "2026-11-28T14:00:00Z" in rendered.text


def test_reset_email_links_to_the_reset_page_with_the_token_url_encoded() -> None:
    rendered = render(
        EmailTemplate.PASSWORD_RESET,
        CONTEXTS[EmailTemplate.PASSWORD_RESET],
        public_base_url=BASE_URL,
    )

    link = f"{BASE_URL}/reset-password?token=rst_a%2Bb%2Fc%3D"
    assert link in rendered.text.splitlines()
    assert f'<a href="{link}"' in rendered.html


def test_links_ignore_a_trailing_slash_of_the_base_url() -> None:
    rendered = render(
        EmailTemplate.TASK_DUE_SOON,
        CONTEXTS[EmailTemplate.TASK_DUE_SOON],
        public_base_url=f"{BASE_URL}/",
    )

    assert f"{BASE_URL}/tasks/{TASK_ID}" in rendered.text.splitlines()


def test_task_assigned_names_the_task_the_actor_and_links_to_it() -> None:
    rendered = render(
        EmailTemplate.TASK_ASSIGNED, CONTEXTS[EmailTemplate.TASK_ASSIGNED], public_base_url=BASE_URL
    )

    assert rendered.subject == "Grace assigned you: Write the report"
    assert "Grace assigned you a task:" in rendered.text
    assert f"{BASE_URL}/tasks/{TASK_ID}" in rendered.text.splitlines()
    assert f'<a href="{BASE_URL}/tasks/{TASK_ID}"' in rendered.html


def test_task_assigned_without_an_actor_name_says_so_plainly() -> None:
    context = {**CONTEXTS[EmailTemplate.TASK_ASSIGNED], "assigned_by": ""}

    rendered = render(EmailTemplate.TASK_ASSIGNED, context, public_base_url=BASE_URL)

    assert rendered.subject == "Assigned to you: Write the report"
    assert "A task was assigned to you:" in rendered.text


def test_due_soon_shows_the_due_time_as_given() -> None:
    rendered = render(
        EmailTemplate.TASK_DUE_SOON, CONTEXTS[EmailTemplate.TASK_DUE_SOON], public_base_url=BASE_URL
    )

    assert rendered.subject == "Due soon: Write the report"
    assert "this task is due at 2026-11-29 14:00 Europe/Paris:" in rendered.text
    assert "<strong>2026-11-29 14:00 Europe/Paris</strong>" in rendered.html


def test_html_escapes_a_task_title_and_plain_text_keeps_it() -> None:
    title = '<script>alert("x")</script> & co'
    context = {**CONTEXTS[EmailTemplate.TASK_ASSIGNED], "task_title": title}

    rendered = render(EmailTemplate.TASK_ASSIGNED, context, public_base_url=BASE_URL)

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in rendered.html
    assert f"    {title}" in rendered.text.splitlines()


def test_a_line_break_in_a_title_cannot_reach_the_subject() -> None:
    context = {**CONTEXTS[EmailTemplate.TASK_DUE_SOON], "task_title": "one\r\nBcc: x@y.z"}

    rendered = render(EmailTemplate.TASK_DUE_SOON, context, public_base_url=BASE_URL)

    assert rendered.subject == "Due soon: one Bcc: x@y.z"


def test_a_missing_context_key_is_an_error() -> None:
    with pytest.raises(InvalidEmail, match="missing \\['expires_at'\\]"):
        render(EmailTemplate.PASSWORD_RESET, {"token": "t"}, public_base_url=BASE_URL)


def test_an_unexpected_context_key_is_an_error() -> None:
    with pytest.raises(InvalidEmail, match="unexpected \\['email'\\]"):
        render(EmailTemplate.WELCOME, {"name": "Ada", "email": "a@b.c"}, public_base_url=BASE_URL)


def test_a_context_value_that_is_not_a_string_is_an_error() -> None:
    with pytest.raises(InvalidEmail, match="must be strings"):
        EmailMessage("k", "ada@example.com", EmailTemplate.WELCOME, {"name": {"$ne": ""}})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "to",
    ["", "ada", "Ada <ada@example.com>", "ada@example.com, eve@example.com", "ada@exa\r\nmple.com"],
)
def test_an_email_goes_to_one_plain_address(to: str) -> None:
    with pytest.raises(InvalidEmail, match="one email address"):
        EmailMessage("k", to, EmailTemplate.WELCOME, {"name": "Ada"})


@pytest.mark.parametrize("key", ["", "x" * 513, "welcome:\n1"])
def test_an_email_key_is_short_printable_text(key: str) -> None:
    with pytest.raises(InvalidEmail, match="key"):
        EmailMessage(key, "ada@example.com", EmailTemplate.WELCOME, {"name": "Ada"})


def compose(key: str = "welcome:e1:u1") -> MimeMessage:
    rendered = render(EmailTemplate.WELCOME, {"name": "Ada"}, public_base_url=BASE_URL)
    return compose_message(
        rendered,
        key=key,
        sender="taskmesh <no-reply@taskmesh.example.com>",
        to="ada@example.com",
        created_at=datetime(2026, 11, 28, 13, 0, tzinfo=UTC),
    )


def test_the_message_is_multipart_alternative_with_text_then_html() -> None:
    parsed = message_from_bytes(compose().as_bytes(), policy=policy.default)

    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["From"] == "taskmesh <no-reply@taskmesh.example.com>"
    assert parsed["To"] == "ada@example.com"
    assert parsed["Subject"] == "Welcome to taskmesh"
    assert parsed["Date"] == "Sat, 28 Nov 2026 13:00:00 +0000"
    assert parsed["Auto-Submitted"] == "auto-generated"


def test_the_message_id_is_derived_from_the_key_alone() -> None:
    first, again, other = (
        compose("welcome:e1:u1"),
        compose("welcome:e1:u1"),
        compose("welcome:e2:u1"),
    )

    assert (
        first["Message-ID"]
        == again["Message-ID"]
        == message_id("welcome:e1:u1", domain="taskmesh.example.com")
    )
    assert other["Message-ID"] != first["Message-ID"]
    assert first["Message-ID"].endswith("@taskmesh.example.com>")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:1025", SmtpServer("127.0.0.1", 1025, SmtpSecurity.STARTTLS_IF_OFFERED)),
        (
            "smtp://mail.example.com",
            SmtpServer("mail.example.com", 25, SmtpSecurity.STARTTLS_IF_OFFERED),
        ),
        (
            "smtp+starttls://app%40example.com:p%40ss%3Aw0rd@mail.example.com",
            SmtpServer(
                "mail.example.com", 587, SmtpSecurity.STARTTLS, "app@example.com", "p@ss:w0rd"
            ),
        ),
        (
            "SMTPS://app:secret@mail.example.com:2465/",
            SmtpServer("mail.example.com", 2465, SmtpSecurity.TLS, "app", "secret"),
        ),
    ],
)
def test_smtp_urls_name_host_port_security_and_decoded_credentials(
    url: str, expected: SmtpServer
) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "scheme"),
        ("smtp://", "host"),
        ("smtp://mail.example.com/inbox", "only scheme"),
        ("smtp://mail.example.com:99999", "port"),
        ("smtps://app@mail.example.com", "both a user name and a password"),
        ("smtp://app:hunter2@mail.example.com", "never sent unencrypted"),
    ],
)
def test_unusable_smtp_urls_are_refused_without_quoting_them(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        parse_smtp_url(url)

    assert "hunter2" not in str(refused.value)
    assert "mail.example.com" not in str(refused.value)


def test_the_smtp_password_stays_out_of_reprs_and_validation_errors() -> None:
    settings = MailSettings(smtp_url=SecretStr("smtps://app:hunter2@mail.example.com"))

    assert settings.smtp_server.password == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.smtp_server)
    with pytest.raises(pydantic.ValidationError) as refused:
        MailSettings(smtp_url=SecretStr("smtp://app:hunter2@mail.example.com"))
    assert "hunter2" not in str(refused.value)


def test_mail_settings_normalise_the_base_url_and_refuse_bad_ones() -> None:
    assert MailSettings(public_base_url="https://app.example.com/").public_base_url == (
        "https://app.example.com"
    )
    with pytest.raises(pydantic.ValidationError, match="PUBLIC_BASE_URL"):
        MailSettings(public_base_url="javascript:alert(1)")


def test_mail_settings_take_the_envelope_sender_from_email_from() -> None:
    settings = MailSettings(email_from="Team <team@example.com>", email_retry_delays_s=(1, 2))

    assert settings.sender_address == "team@example.com"
    assert settings.email_max_attempts == 3
    with pytest.raises(pydantic.ValidationError, match="EMAIL_FROM"):
        MailSettings(email_from="nobody")
