"""Redaction of credentials from access-log lines (webhook `sig`, signed page links).

The service echoes our per-attempt webhook secret in the `sig` query parameter, exam and
instructor links carry signed tokens in their paths, and /lti/register carries the invite and
the LMS's registration token in its query; an access log must show none of them.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

# Access-log loggers of the servers we run under (werkzeug: serve/demo; gunicorn in production).
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
# lti_message_hint: Canvas sends a signed JWT there, good for a login while it lives.
_QUERY_SECRET = re.compile(
    r"([?&](?:sig|api_token|token|id_token|invite|registration_token|lti_message_hint)=)"
    r"[^&\s\"']+"
)
_PATH_TOKEN = re.compile(r"(/(?:exam/open|instructor)/)[^/\s\"'?]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Replace credentials in a log line with [redacted]."""
    return _PATH_TOKEN.sub(r"\1" + REDACTED, _QUERY_SECRET.sub(r"\1" + REDACTED, text))


class RedactSecretsFilter(logging.Filter):
    """A logging filter that rewrites a record's message with its credentials removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def init_app(app: Flask) -> None:
    """Attach the redaction filter to the access loggers, once per process."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
            logger.addFilter(RedactSecretsFilter())
