"""Keep `?access_token=` out of the server's own log lines.

`GET /api/v1/ws?access_token=...` carries a token in its query string. The app removes it from
the request's scope before anything is logged from there (`realtime.endpoint.take_token`), but
uvicorn's WebSocket protocol logs the raw request line itself, before the app runs
(`< GET /api/v1/ws?access_token=... HTTP/1.1`, at DEBUG, on `uvicorn.error`). This filter
rewrites the parameter's value in every record of uvicorn's loggers.
"""

from __future__ import annotations

import logging
import re
from typing import Final

SERVER_LOGGERS: Final = ("uvicorn.error", "uvicorn.access")
"""The loggers uvicorn (and the websockets protocol it drives) write request lines to."""

# A token's characters, raw or percent-encoded (JWTs are base64url and dots).
_QUERY_TOKEN = re.compile(r"(?i)(access_token=)[A-Za-z0-9._~%+/=-]*")
_REDACTED = r"\1[redacted]"


def _redact(value: object) -> object:
    return _QUERY_TOKEN.sub(_REDACTED, value) if isinstance(value, str) else value


class QueryTokenFilter(logging.Filter):
    """Replaces the value of any `access_token=` in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drop it."""
        record.msg = _redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(argument) for argument in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact(argument) for key, argument in record.args.items()}
        return True


def redact_query_tokens() -> None:
    """Install the filter on uvicorn's loggers (once, whatever the number of calls)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, QueryTokenFilter) for existing in logger.filters):
            logger.addFilter(QueryTokenFilter())
