"""Logging: set up once at start (one line per event, text or JSON), the request id every line
carries, and the redaction of credentials from log lines.

The service echoes our per-attempt webhook secret in the `sig` query parameter, exam and
instructor links carry signed tokens in their paths, and /lti/register carries the invite and
the LMS's registration token in its query; no log line may show any of them. The request id
lives in a context variable (per thread, per greenlet under gevent) that web/ binds per request.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask

from lti_proctor.config import ConfigError

# Access-log loggers of the servers we run under (werkzeug: serve/demo; gunicorn in production).
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
# lti_message_hint: Canvas sends a signed JWT there, good for a login while it lives; so is the
# `data` of Canvas's deep-linking return URL (it binds a response to the course it adds to).
_QUERY_SECRET = re.compile(
    r"([?&](?:sig|api_token|token|id_token|invite|registration_token|lti_message_hint|data)=)"
    r"[^&\s\"']+"
)
_PATH_TOKEN = re.compile(r"(/(?:exam/open|instructor)/)[^/\s\"'?]+")
REDACTED = "[redacted]"
LOG_FORMATS = ("text", "json")
NO_REQUEST = "-"
# What a proxy's X-Request-ID may look like to be kept (nginx's $request_id is 32 hex digits).
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,99}$")
# The attributes every LogRecord has; anything else on a record was passed with `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}

_request_id: ContextVar[str | None] = ContextVar("lti_proctor_request_id", default=None)


class LogSetupError(ConfigError):
    """The logging settings are invalid (LOG_FORMAT, LOG_LEVEL)."""


def redact(text: str) -> str:
    """Replace credentials in a log line with [redacted]."""
    return _PATH_TOKEN.sub(r"\1" + REDACTED, _QUERY_SECRET.sub(r"\1" + REDACTED, text))


# -- the request id ------------------------------------------------------------------------------


def sane_request_id(candidate: str | None) -> str | None:
    """candidate when safe to repeat in logs and headers (8-100 plain characters), else None."""
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return None


def bind_request_id(value: str) -> Token[str | None]:
    """Make value the request id of every line logged in this context until reset."""
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    """Forget the request id bound by bind_request_id."""
    _request_id.reset(token)


def current_request_id() -> str:
    """The bound request id, or '-' outside a request."""
    return _request_id.get() or NO_REQUEST


# -- filters and formatters -----------------------------------------------------------------------


class RedactSecretsFilter(logging.Filter):
    """A logging filter that rewrites a record's message with its credentials removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class RequestIdFilter(logging.Filter):
    """Stamp each record with the request id bound in its context (unless it carries one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add record.request_id; never drops it."""
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}


def _exception_text(record: logging.LogRecord) -> str | None:
    if not record.exc_info:
        return None
    return "".join(traceback.format_exception(*record.exc_info)).rstrip()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        line.update(_extras(record))
        exc = _exception_text(record)
        if exc:
            line["exc"] = redact(exc)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id] message key=value ...`, a traceback kept on the same line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        parts = [
            f"{when}Z {record.levelname} {record.name}",
            f"[{getattr(record, 'request_id', NO_REQUEST)}] {record.getMessage()}",
        ]
        parts += [f"{k}={v}" for k, v in _extras(record).items()]
        exc = _exception_text(record)
        if exc:
            parts.append("| " + redact(exc).replace("\n", " | "))
        return " ".join(parts)


class _ToolHandler(logging.StreamHandler[TextIO]):
    """The one handler the tool installs on the root logger (found again by its class)."""


def configure_logging(log_format: str, level: str) -> logging.Handler:
    """Send every log record, once, to stderr as one line: text or JSON. Idempotent per process."""
    if log_format not in LOG_FORMATS:
        raise LogSetupError(
            f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"
        )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise LogSetupError(f"LOG_LEVEL {level!r} is not a logging level (INFO, WARNING, ...)")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _ToolHandler)), None)
    if handler is None:
        handler = _ToolHandler(sys.stderr)
        handler.addFilter(RequestIdFilter())
        handler.addFilter(RedactSecretsFilter())
        root.addHandler(handler)
    # The stderr of the moment the app is built: a command runner's later swap of sys.stderr
    # (click's CliRunner) must not mix log lines into the command's own output.
    handler.stream = sys.stderr
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.setLevel(numeric)
    # Alembic narrates every schema check at INFO ("Context impl ..."): only its warnings count.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    return handler


def init_app(app: Flask) -> None:
    """Configure logging from LOG_FORMAT/LOG_LEVEL and redact the access loggers."""
    configure_logging(str(app.config["LOG_FORMAT"]).lower(), str(app.config["LOG_LEVEL"]))
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
            logger.addFilter(RedactSecretsFilter())
