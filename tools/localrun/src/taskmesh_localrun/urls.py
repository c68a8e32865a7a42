"""Showing connection URLs without their secrets."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and files."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def url_password(url: str) -> str | None:
    """The password in the URL, if any (to scrub it from error texts)."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None
