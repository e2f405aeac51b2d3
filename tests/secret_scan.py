"""The secret scanner every test's captured log output goes through (see tests/conftest.py).

One compiled pattern, so a test costs one search over the text of its log records. It knows
the shapes of real credentials (PEM private keys, JWTs, bearer tokens, Fernet tokens, the
webhook secret in its header or `sig` parameter) and the values the fakes hand out (SDK session
tokens, LMS access tokens, the test API key and access code).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from tests.factories_attempts import ACCESS_CODE, PROCTOR_CONFIG

_SHAPES = {
    "PEM private key": r"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----",
    "JWT": r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
    "bearer token": r"\b[Bb](?i:earer)\s+(?!\[redacted)[A-Za-z0-9._~+/=-]{8,}",
    "Fernet token": r"\bgAAAAA[A-Za-z0-9_=-]{40,}",
    "webhook secret": r"(?:[?&]sig=|(?i:x-tool-webhook-secret)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\[redacted)[A-Za-z0-9_-]{16,}",
    "access token field": r"\"(?i:access_token)\"\s*:\s*\"(?!\[redacted)[^\"]{6,}\"",
    "SDK session token": r"\bsdk-token-\d+\b",
    "LMS access token": r"\b(?:moodle|canvas|openedx)fake-token-\d+\b",
    "API key": re.escape(str(PROCTOR_CONFIG["TRUSTEXAM_API_KEY"])),
    "access code": re.escape(ACCESS_CODE),
}
SECRET = re.compile("|".join(f"(?P<g{i}>{p})" for i, p in enumerate(_SHAPES.values())))
_NAMES = list(_SHAPES)
_FORMATTER = logging.Formatter()


def record_text(records: Iterable[logging.LogRecord]) -> str:
    """Every record's message, with its traceback when it has one."""
    parts = []
    for record in records:
        try:
            parts.append(record.getMessage())
        except Exception:  # a broken format string is a bug of its own, not a leak
            parts.append(str(record.msg))
        if record.exc_info:
            parts.append(_FORMATTER.formatException(record.exc_info))
    return "\n".join(parts)


def find_secrets(text: str) -> list[str]:
    """The kinds of secret found in text, with a short excerpt of each hit."""
    hits = []
    for match in SECRET.finditer(text):
        kind = _NAMES[int(str(match.lastgroup)[1:])]
        hits.append(f"{kind}: ...{text[max(0, match.start() - 40) : match.end()][:120]}")
    return hits
