"""The emails the service sends: Jinja2 templates (subject, plain text, HTML) and their rendering.

Each template lives in `templates/` as `<name>.subject.txt`, `<name>.txt` and `<name>.html`.
The HTML is autoescaped, so a task titled `<script>` arrives as text; the plain text and the
subject are not (they are not HTML). Undefined variables are errors, never empty strings.
Links are built here from `public_base_url`, with every value URL-encoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import quote

import jinja2

from taskmesh_notifications.mail.errors import InvalidEmail


class EmailTemplate(StrEnum):
    """The emails there are."""

    WELCOME = "welcome"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a template name, not a secret
    TASK_ASSIGNED = "task_assigned"
    TASK_DUE_SOON = "task_due_soon"


# The context each template takes: exactly these keys, each a string.
CONTEXT_KEYS: Final[Mapping[EmailTemplate, frozenset[str]]] = {
    EmailTemplate.WELCOME: frozenset({"name"}),
    EmailTemplate.PASSWORD_RESET: frozenset({"token", "expires_at"}),
    EmailTemplate.TASK_ASSIGNED: frozenset({"name", "task_id", "task_title", "assigned_by"}),
    EmailTemplate.TASK_DUE_SOON: frozenset({"name", "task_id", "task_title", "due_at"}),
}


@dataclass(frozen=True)
class RenderedEmail:
    """An email's subject (one line) and its two bodies."""

    subject: str
    text: str
    html: str


def _environment(*, autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("taskmesh_notifications.mail", "templates"),
        # Off only for the plain text and subjects, which are not HTML.
        autoescape=autoescape,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# Plain text is not HTML: escaping it would show `&lt;` to the reader.
_TEXT: Final = _environment(autoescape=False)
_HTML: Final = _environment(autoescape=True)


def check_context(template: EmailTemplate, context: Mapping[str, object]) -> None:
    """Raise InvalidEmail unless `context` has exactly the template's keys, each a string."""
    expected = CONTEXT_KEYS[template]
    missing = expected - context.keys()
    unexpected = context.keys() - expected
    if missing or unexpected:
        raise InvalidEmail(
            f"{template} takes the context keys {sorted(expected)}; "
            f"missing {sorted(missing)}, unexpected {sorted(map(str, unexpected))}"
        )
    not_strings = sorted(key for key, value in context.items() if not isinstance(value, str))
    if not_strings:
        raise InvalidEmail(f"{template}: context values must be strings: {not_strings}")


def render(
    template: EmailTemplate, context: Mapping[str, str], *, public_base_url: str
) -> RenderedEmail:
    """Render the subject and both bodies of `template`; raise InvalidEmail for a bad context."""
    check_context(template, context)
    variables: dict[str, str] = {
        **context,
        **_links(template, context, public_base_url.rstrip("/")),
    }
    subject = " ".join(_TEXT.get_template(f"{template}.subject.txt").render(variables).split())
    variables["subject"] = subject
    return RenderedEmail(
        subject=subject,
        text=_TEXT.get_template(f"{template}.txt").render(variables),
        html=_HTML.get_template(f"{template}.html").render(variables),
    )


def _links(template: EmailTemplate, context: Mapping[str, str], base_url: str) -> dict[str, str]:
    links = {"app_url": f"{base_url}/"}
    if template is EmailTemplate.PASSWORD_RESET:
        links["reset_url"] = f"{base_url}/reset-password?token={quote(context['token'], safe='')}"
    if template in (EmailTemplate.TASK_ASSIGNED, EmailTemplate.TASK_DUE_SOON):
        links["task_url"] = f"{base_url}/tasks/{quote(context['task_id'], safe='')}"
    return links
