"""Email delivery against real SecantusDB and a real SMTP server (aiosmtpd, in-process)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import REGISTRY
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from taskmesh_chassis.mongo import ensure_indexes
from taskmesh_chassis.testing import CapturedLogs, capture_logs
from taskmesh_notifications.mail import (
    EMAIL_INDEXES,
    EmailMessage,
    EmailTemplate,
    Mail,
    MailSettings,
)
from taskmesh_notifications.mail.message import message_id

pytestmark = pytest.mark.integration

Database = Any

TOKEN = "rst_9f8e7d6c5b4a"
SMTP_USER = "app@example.com"
SMTP_PASSWORD = "p@ss w0rd:/"  # URL-encoded in SMTP_URL
SMTP_USERINFO = "app%40example.com:p%40ss%20w0rd%3A%2F"


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Wait until `check()` holds, polling; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Received:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: MimeMessage
    over_tls: bool
    login: str | None


@dataclass
class Inbox:
    """aiosmtpd handler: keeps every message; can refuse recipients or hold DATA."""

    refuse_recipients: bool = False
    hold: asyncio.Event | None = None
    messages: list[Received] = field(default_factory=list)
    data_started: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse_recipients:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.data_started.set()
        if self.hold is not None:
            await self.hold.wait()
        auth = session.auth_data if session.authenticated else None
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message_from_bytes(envelope.original_content, policy=policy.default),  # type: ignore[arg-type]
                over_tls=server.transport.get_extra_info("ssl_object") is not None,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            )
        )
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        return [received.message["Message-ID"] for received in self.messages]


# Over implicit TLS, aiosmtpd cannot tell that AUTH is encrypted, and warns.
IMPLICIT_TLS_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def check_credentials(
    server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    valid = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=valid, handled=False, auth_data=auth_data)


@asynccontextmanager
async def smtp_server(
    inbox: Inbox,
    port: int,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    require_auth: bool = False,
) -> AsyncIterator[None]:
    """Serve SMTP on 127.0.0.1:port into `inbox` while the block runs."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            inbox,
            hostname="test-smtp",
            tls_context=starttls,
            require_starttls=require_starttls,
            auth_required=require_auth,
            # Over implicit TLS aiosmtpd does not know the session is encrypted.
            auth_require_tls=implicit_tls is None,
            authenticator=check_credentials if require_auth else None,
        ),
        host="127.0.0.1",
        port=port,
        ssl=implicit_tls,
    )
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA of our own and a certificate it signed for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("smtp-tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "taskmesh test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain_file = directory / "server.pem"
    chain_file.write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(chain_file)
    return Certificates(ca_file, server_context)


@pytest.fixture
async def database(secantus_url: str) -> AsyncIterator[Database]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(secantus_url, tz_aware=True)
    database = client[f"test_{uuid.uuid4().hex[:12]}_notifications"]
    await ensure_indexes(database, EMAIL_INDEXES)
    yield database
    await client.drop_database(database.name)
    await client.close()


@pytest.fixture
def logs() -> CapturedLogs:
    # The services' default level. (At DEBUG, pymongo logs whole commands and aiosmtpd
    # whole messages, secrets included.)
    return capture_logs("notifications", "INFO")


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def smtp_port(free_port: int, inbox: Inbox) -> AsyncIterator[int]:
    """A plain SMTP server (no TLS, no AUTH) delivering into `inbox`."""
    async with smtp_server(inbox, free_port):
        yield free_port


def mail_settings(
    port: int, *, scheme: str = "smtp", userinfo: str = "", **overrides: Any
) -> MailSettings:
    credentials = f"{userinfo}@" if userinfo else ""
    values: dict[str, Any] = {
        "smtp_url": SecretStr(f"{scheme}://{credentials}127.0.0.1:{port}"),
        "smtp_timeout_s": 2.0,
        "email_from": "taskmesh <no-reply@taskmesh.test>",
        "public_base_url": "https://taskmesh.test",
        "email_retry_delays_s": (0.1, 0.1, 0.1),
        "email_sweep_interval_s": 0.2,
        **overrides,
    }
    return MailSettings(**values)


@asynccontextmanager
async def running(*mails: Mail) -> AsyncIterator[None]:
    for mail in mails:
        await mail.start()
    try:
        yield
    finally:
        for mail in mails:
            await mail.stop()


def welcome(key: str = "welcome:event-1:user-1", to: str = "ada@example.com") -> EmailMessage:
    return EmailMessage(key, to, EmailTemplate.WELCOME, {"name": "Ada"})


def password_reset(key: str = "password_reset:event-1:user-1") -> EmailMessage:
    return EmailMessage(
        key,
        "ada@example.com",
        EmailTemplate.PASSWORD_RESET,
        {"token": TOKEN, "expires_at": "2026-11-28T14:00:00Z"},
    )


async def enqueue(mail: Mail, database: Database, message: EmailMessage) -> bool:
    """Queue outside any transaction, as a caller without one would."""
    async with database.client.start_session() as session:
        return await mail.queue.enqueue(message, session)


def counter(name: str, template: str) -> float:
    return REGISTRY.get_sample_value(name, {"template": template}) or 0.0


async def test_a_queued_email_is_sent_and_its_record_marked_sent(
    database: Database, inbox: Inbox, smtp_port: int, logs: CapturedLogs
) -> None:
    mail = Mail(mail_settings(smtp_port), database)
    sent_before = counter("taskmesh_emails_sent_total", "password_reset")

    async with running(mail):
        assert await enqueue(mail, database, password_reset())

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, what="the email to arrive")

        async def marked_sent() -> bool:
            record = await database.emails.find_one({"_id": "password_reset:event-1:user-1"})
            return record is not None and record["status"] == "sent"

        await eventually(marked_sent, what="the record to be marked sent")

    (received,) = inbox.messages
    assert received.mail_from == "no-reply@taskmesh.test"
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.over_tls is False
    message = received.message
    assert message["Subject"] == "Reset your taskmesh password"
    assert message["To"] == "ada@example.com"
    assert message["Message-ID"] == message_id(
        "password_reset:event-1:user-1", domain="taskmesh.test"
    )
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert f"token: {TOKEN}" in text.get_content().splitlines()
    assert f"https://taskmesh.test/reset-password?token={TOKEN}" in html.get_content()
    record = await database.emails.find_one({"_id": "password_reset:event-1:user-1"})
    assert record is not None
    assert (record["attempts"], record["to"], record["template"]) == (
        1,
        "ada@example.com",
        "password_reset",
    )
    assert record["sent_at"] >= record["created_at"]
    assert not {"context", "next_attempt_at", "lease_owner", "lease_expires_at"} & record.keys()
    (sent,) = logs.events("email.sent")
    assert (sent["template"], sent["key"], sent["attempts"]) == (
        "password_reset",
        "password_reset:event-1:user-1",
        1,
    )
    assert TOKEN not in json.dumps(logs.lines())
    assert counter("taskmesh_emails_sent_total", "password_reset") == sent_before + 1


async def test_the_same_key_queued_twice_is_one_record_and_one_email(
    database: Database, inbox: Inbox, smtp_port: int
) -> None:
    mail = Mail(mail_settings(smtp_port), database)

    async with running(mail):
        assert await enqueue(mail, database, welcome()) is True
        assert await enqueue(mail, database, welcome()) is False

        async def delivered() -> bool:
            return len(inbox.messages) >= 1

        await eventually(delivered, what="the email to arrive")
        assert await enqueue(mail, database, welcome()) is False
        # Several sweeps later, still one.
        await asyncio.sleep(0.6)

    assert len(inbox.messages) == 1
    assert await database.emails.count_documents({}) == 1


async def test_an_email_queued_in_a_transaction_is_sent_once_it_commits(
    database: Database, inbox: Inbox, smtp_port: int
) -> None:
    mail = Mail(mail_settings(smtp_port, email_sweep_interval_s=60.0), database)

    async with running(mail):
        async with database.client.start_session() as session:
            async with await session.start_transaction():
                assert await mail.queue.enqueue(welcome(), session)
                assert await database.emails.count_documents({}) == 0
            mail.queue.wake_senders()

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, timeout_s=10, what="the email to arrive")


async def test_a_duplicate_key_leaves_the_callers_transaction_usable(
    database: Database, smtp_port: int
) -> None:
    mail = Mail(mail_settings(smtp_port), database)
    assert await enqueue(mail, database, welcome())
    await database.create_collection("other_writes")

    async with database.client.start_session() as session, await session.start_transaction():
        assert await mail.queue.enqueue(welcome(), session) is False
        await database.other_writes.insert_one({"_id": "same-transaction"}, session=session)

    assert await database.other_writes.count_documents({"_id": "same-transaction"}) == 1


async def test_an_aborted_transaction_queues_nothing(database: Database, smtp_port: int) -> None:
    mail = Mail(mail_settings(smtp_port), database)

    async with database.client.start_session() as session:
        await session.start_transaction()
        assert await mail.queue.enqueue(welcome(), session)
        await session.abort_transaction()

    assert await database.emails.count_documents({}) == 0


async def test_forgetting_a_user_deletes_their_records_and_their_pending_email_is_never_sent(
    database: Database, inbox: Inbox, smtp_port: int
) -> None:
    mail = Mail(mail_settings(smtp_port, email_sweep_interval_s=60.0), database)
    user_id = "65a1b2c3d4e5f60718293a4b"
    theirs = EmailMessage(
        "welcome:e1:u1", "ada@example.com", EmailTemplate.WELCOME, {"name": "Ada"}, user_id=user_id
    )
    others = EmailMessage(
        "welcome:e2:u2",
        "bob@example.com",
        EmailTemplate.WELCOME,
        {"name": "Bob"},
        user_id="75a1b2c3d4e5f60718293a4b",
    )
    assert await enqueue(mail, database, theirs)
    assert await enqueue(mail, database, others)

    async with database.client.start_session() as session:
        assert await mail.queue.forget_user(user_id, session) == 1

    async with running(mail):

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, timeout_s=10, what="the other user's email")
        await asyncio.sleep(0.3)
    assert [message.rcpt_tos for message in inbox.messages] == [["bob@example.com"]]
    assert await database.emails.count_documents({"user_id": user_id}) == 0


async def test_an_smtp_server_down_is_retried_until_it_is_back(
    database: Database, inbox: Inbox, free_port: int, logs: CapturedLogs
) -> None:
    mail = Mail(mail_settings(free_port, email_retry_delays_s=(0.2,) * 20), database)

    async with running(mail):
        await enqueue(mail, database, welcome())

        async def retried() -> bool:
            return bool(logs.events("email.retry_scheduled"))

        await eventually(retried, what="a retry to be scheduled")
        record = await database.emails.find_one({"_id": "welcome:event-1:user-1"})
        assert record is not None
        assert record["status"] == "pending"
        assert record["attempts"] >= 1
        assert "connect" in record["last_error"].lower()

        async with smtp_server(inbox, free_port):

            async def delivered() -> bool:
                return len(inbox.messages) == 1

            await eventually(delivered, what="the email to arrive once the server is up")

    retry = logs.events("email.retry_scheduled")[0]
    assert (retry["template"], retry["key"], retry["attempts"]) == (
        "welcome",
        "welcome:event-1:user-1",
        1,
    )
    assert retry["retry_in_s"] == 0.2


async def test_an_email_is_marked_failed_after_its_last_attempt(
    database: Database, free_port: int, logs: CapturedLogs
) -> None:
    mail = Mail(mail_settings(free_port, email_retry_delays_s=(0.05, 0.05)), database)
    failures_before = counter("taskmesh_email_failures_total", "password_reset")

    async with running(mail):
        await enqueue(mail, database, password_reset())

        async def failed() -> bool:
            record = await database.emails.find_one({"_id": "password_reset:event-1:user-1"})
            return record is not None and record["status"] == "failed"

        await eventually(failed, what="the record to be marked failed")

    record = await database.emails.find_one({"_id": "password_reset:event-1:user-1"})
    assert record is not None
    assert record["attempts"] == 3
    assert record["last_error"]
    assert "failed_at" in record
    assert not {"context", "next_attempt_at", "lease_owner"} & record.keys()
    assert len(logs.events("email.retry_scheduled")) == 2
    (failure,) = logs.events("email.failed")
    assert (failure["template"], failure["attempts"]) == ("password_reset", 3)
    assert TOKEN not in json.dumps(logs.lines())
    assert counter("taskmesh_email_failures_total", "password_reset") == failures_before + 1


async def test_a_recipient_refused_for_good_is_not_retried(
    database: Database, inbox: Inbox, smtp_port: int, logs: CapturedLogs
) -> None:
    inbox.refuse_recipients = True
    mail = Mail(mail_settings(smtp_port), database)

    async with running(mail):
        await enqueue(mail, database, welcome())

        async def failed() -> bool:
            return bool(logs.events("email.failed"))

        await eventually(failed, what="the email to be given up")

    record = await database.emails.find_one({"_id": "welcome:event-1:user-1"})
    assert record is not None
    assert (record["status"], record["attempts"]) == ("failed", 1)
    assert "550" in record["last_error"]
    assert logs.events("email.retry_scheduled") == []


async def test_two_senders_on_one_queue_send_each_email_exactly_once(
    database: Database, smtp_port: int, inbox: Inbox
) -> None:
    first = Mail(mail_settings(smtp_port), database)
    second = Mail(mail_settings(smtp_port), database)
    keys = [f"welcome:event-{number}:user-{number}" for number in range(30)]
    for key in keys:
        await enqueue(first, database, welcome(key))

    async with running(first, second):

        async def all_delivered() -> bool:
            return len(inbox.messages) >= len(keys)

        await eventually(all_delivered, what="every email to arrive")
        await asyncio.sleep(0.6)

    assert sorted(inbox.message_ids()) == sorted(
        message_id(key, domain="taskmesh.test") for key in keys
    )
    records = await database.emails.find().to_list()
    assert {(record["status"], record["attempts"]) for record in records} == {("sent", 1)}


async def test_an_email_whose_sender_died_is_sent_once_its_lease_expires(
    database: Database, inbox: Inbox, smtp_port: int
) -> None:
    mail = Mail(mail_settings(smtp_port), database)
    await enqueue(mail, database, welcome())
    (due,) = await mail.queue.due(dt.datetime.now(dt.UTC), limit=10)
    now = dt.datetime.now(dt.UTC)
    assert await mail.queue.claim(
        due, owner="a-dead-instance", now=now, lease_until=now + dt.timedelta(seconds=2)
    )

    async with running(mail):
        await asyncio.sleep(0.5)
        assert inbox.messages == []

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, what="the email to be sent after the lease")
        await asyncio.sleep(0.3)

    record = await database.emails.find_one({"_id": "welcome:event-1:user-1"})
    assert record is not None
    assert (record["status"], record["attempts"]) == ("sent", 2)


async def test_an_email_whose_senders_kept_dying_is_given_up_unsent(
    database: Database, inbox: Inbox, smtp_port: int, logs: CapturedLogs
) -> None:
    mail = Mail(mail_settings(smtp_port, email_retry_delays_s=(0.1, 0.1)), database)
    await enqueue(mail, database, welcome())
    for _ in range(3):
        (due,) = await mail.queue.due(dt.datetime.now(dt.UTC), limit=10)
        now = dt.datetime.now(dt.UTC)
        assert await mail.queue.claim(due, owner="a-dead-instance", now=now, lease_until=now)

    async with running(mail):

        async def failed() -> bool:
            return bool(logs.events("email.failed"))

        await eventually(failed, what="the email to be given up")

    assert inbox.messages == []
    record = await database.emails.find_one({"_id": "welcome:event-1:user-1"})
    assert record is not None
    assert (record["status"], record["attempts"]) == ("failed", 4)


async def test_stop_finishes_the_send_in_flight(
    database: Database, inbox: Inbox, smtp_port: int
) -> None:
    inbox.hold = asyncio.Event()
    mail = Mail(mail_settings(smtp_port), database)
    await mail.start()
    await enqueue(mail, database, welcome())
    await asyncio.wait_for(inbox.data_started.wait(), timeout=10)

    stopping = asyncio.create_task(mail.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()
    inbox.hold.set()
    await asyncio.wait_for(stopping, timeout=10)

    assert len(inbox.messages) == 1
    record = await database.emails.find_one({"_id": "welcome:event-1:user-1"})
    assert record is not None
    assert record["status"] == "sent"


async def test_the_due_query_reads_only_due_records_through_the_index(database: Database) -> None:
    now = dt.datetime.now(dt.UTC)
    record = {"to": "ada@example.com", "template": "welcome", "created_at": now}
    sent = [
        {**record, "_id": f"sent-{n}", "status": "sent", "attempts": 1, "sent_at": now}
        for n in range(20)
    ]
    pending = [
        {
            **record,
            "_id": f"pending-{n}",
            "status": "pending",
            "attempts": 0,
            "context": {"name": "Ada"},
            "next_attempt_at": now + dt.timedelta(seconds=n - 3),
        }
        for n in range(6)
    ]
    await database.emails.insert_many(sent + pending)
    mail = Mail(mail_settings(1025), database)

    plan = await mail.queue.due_cursor(now, limit=50).explain()
    due = await mail.queue.due(now, limit=50)

    assert [delivery.key for delivery in due] == [
        "pending-0",
        "pending-1",
        "pending-2",
        "pending-3",
    ]
    winning = json.dumps(plan["queryPlanner"]["winningPlan"])
    assert '"IXSCAN"' in winning
    assert '"next_attempt_at"' in winning
    assert "COLLSCAN" not in winning
    assert '"SORT"' not in winning
    assert plan["executionStats"]["totalDocsExamined"] == 4


async def test_sent_and_failed_records_expire_after_thirty_days(database: Database) -> None:
    indexes = await database.emails.index_information()

    assert indexes["sent_at_ttl"]["expireAfterSeconds"] == 30 * 24 * 3600
    assert indexes["failed_at_ttl"]["expireAfterSeconds"] == 30 * 24 * 3600
    assert indexes["next_attempt_at"]["key"] == [("next_attempt_at", 1)]


async def test_starttls_then_auth_with_the_decoded_url_credentials(
    database: Database, inbox: Inbox, free_port: int, certificates: Certificates
) -> None:
    settings = mail_settings(
        free_port,
        scheme="smtp+starttls",
        userinfo=SMTP_USERINFO,
        smtp_ca_file=certificates.ca_file,
    )
    mail = Mail(settings, database)

    async with (
        smtp_server(
            inbox,
            free_port,
            starttls=certificates.server_context,
            require_starttls=True,
            require_auth=True,
        ),
        running(mail),
    ):
        await enqueue(mail, database, welcome())

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, what="the email to arrive over STARTTLS")

    (received,) = inbox.messages
    assert (received.over_tls, received.login) == (True, SMTP_USER)


@IMPLICIT_TLS_AUTH
async def test_smtps_sends_over_tls_from_the_first_byte(
    database: Database, inbox: Inbox, free_port: int, certificates: Certificates
) -> None:
    settings = mail_settings(
        free_port, scheme="smtps", userinfo=SMTP_USERINFO, smtp_ca_file=certificates.ca_file
    )
    mail = Mail(settings, database)

    async with (
        smtp_server(inbox, free_port, implicit_tls=certificates.server_context, require_auth=True),
        running(mail),
    ):
        await enqueue(mail, database, welcome())

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, what="the email to arrive over TLS")

    (received,) = inbox.messages
    assert (received.over_tls, received.login) == (True, SMTP_USER)


async def test_plain_smtp_upgrades_to_tls_when_the_server_offers_it(
    database: Database, inbox: Inbox, free_port: int, certificates: Certificates
) -> None:
    mail = Mail(mail_settings(free_port, smtp_ca_file=certificates.ca_file), database)

    async with (
        smtp_server(inbox, free_port, starttls=certificates.server_context),
        running(mail),
    ):
        await enqueue(mail, database, welcome())

        async def delivered() -> bool:
            return len(inbox.messages) == 1

        await eventually(delivered, what="the email to arrive")

    assert inbox.messages[0].over_tls is True


async def test_an_untrusted_certificate_is_retried_never_sent_in_clear(
    database: Database, inbox: Inbox, free_port: int, certificates: Certificates, logs: CapturedLogs
) -> None:
    mail = Mail(mail_settings(free_port, scheme="smtp+starttls"), database)

    async with (
        smtp_server(inbox, free_port, starttls=certificates.server_context),
        running(mail),
    ):
        await enqueue(mail, database, welcome())

        async def retried() -> bool:
            return bool(logs.events("email.retry_scheduled"))

        await eventually(retried, what="the attempt to fail")

    assert inbox.messages == []
    assert "CERTIFICATE_VERIFY_FAILED" in logs.events("email.retry_scheduled")[0]["error"]


@IMPLICIT_TLS_AUTH
async def test_a_wrong_smtp_password_is_retried_and_never_logged(
    database: Database, inbox: Inbox, free_port: int, certificates: Certificates, logs: CapturedLogs
) -> None:
    settings = mail_settings(
        free_port,
        scheme="smtps",
        userinfo="app%40example.com:not-the-password",
        smtp_ca_file=certificates.ca_file,
    )
    mail = Mail(settings, database)

    async with (
        smtp_server(inbox, free_port, implicit_tls=certificates.server_context, require_auth=True),
        running(mail),
    ):
        await enqueue(mail, database, welcome())

        async def retried() -> bool:
            return bool(logs.events("email.retry_scheduled"))

        await eventually(retried, what="the attempt to fail")

    assert inbox.messages == []
    assert "SMTPAuthenticationError" in logs.events("email.retry_scheduled")[0]["error"]
    assert "not-the-password" not in json.dumps(logs.lines())
