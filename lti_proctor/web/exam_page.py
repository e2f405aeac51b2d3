"""Building blocks of the exam page: signed attempt tokens, the SDK language and the page's CSP.

Tokens are itsdangerous signatures on SECRET_KEY with one salt per purpose (api, open, retry), so a
token made for one purpose never works for another. Nothing here reads the database.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_proctor.attempts.models import Attempt
from lti_proctor.web import headers
from lti_proctor.web.headers import origin_of

__all__ = ["origin_of"]  # web/exam.py and web/instructor.py take it from here

SDK_LANGUAGES = ("en", "ru", "kz")
API_TOKEN_TTL_S = 3600  # sliding: every API answer carries a fresh token
# However often it is refreshed, a page token or new-window link dies this long after the
# launch that opened the attempt (its "t"): the exam's window (PROCTOR_EXAM_LINK_MAX_S).
EXAM_LINK_MAX_S = 6 * 3600
_WINDOWED = ("api", "open")
_SALT = "lti-proctor.exam."


# -- signed tokens ------------------------------------------------------------------------------


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT + purpose)


def sign(purpose: str, payload: Mapping[str, Any]) -> str:
    """A URL-safe token for payload, valid only for purpose (api, open, retry)."""
    return str(_serializer(purpose).dumps(dict(payload)))


def unsign(purpose: str, token: str | None, *, max_age_s: int) -> dict[str, Any] | None:
    """The payload of a token made by sign(purpose); None when forged, expired or malformed."""
    if not token:
        return None
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age_s)
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(payload, dict):
        return None
    launched = payload.get("t")
    if purpose in _WINDOWED and isinstance(launched, int | float):
        if time.time() - launched > exam_link_max_s():
            return None  # refreshed all along, but the exam's window since its launch is over
    return payload


def exam_link_max_s() -> int:
    """How long after its launch an exam page's token or new-window link may live at most."""
    return int(current_app.config.get("PROCTOR_EXAM_LINK_MAX_S", EXAM_LINK_MAX_S))


def launched_at(attempt: Attempt) -> float:
    """When the attempt was last launched (its SDK token was fetched), as a Unix time."""
    moment = attempt.token_refreshed_at
    return moment.timestamp() if moment is not None else time.time()


def token_ttl() -> int:
    """How long a page token or new-window link stays valid (PROCTOR_PAGE_TOKEN_TTL_S)."""
    return int(current_app.config.get("PROCTOR_PAGE_TOKEN_TTL_S", API_TOKEN_TTL_S))


def api_token(attempt: Attempt) -> str:
    """The page's bearer token for the attempt API."""
    return sign("api", {"a": attempt.id, "t": launched_at(attempt)})


def open_url(attempt: Attempt, page: PageContext) -> str:
    """A signed link that opens the same attempt's page in a new window."""
    payload = {
        "a": attempt.id,
        "l": page.language,
        "r": page.return_url,
        "m": page.max_attempts,
        "t": launched_at(attempt),
    }
    token = sign("open", payload)
    return str(current_app.config["BASE_URL"]) + url_for("exam.open_attempt", token=token)


# -- what a page needs besides the attempt -------------------------------------------------------


@dataclass(frozen=True)
class PageContext:
    """The launch facts a page keeps: SDK language, the LMS origins that may frame it."""

    language: str
    return_url: str | None
    lms_origins: tuple[str, ...]
    max_attempts: int | None = None  # tells the finish confirmation whether this is the last


def sdk_language(locale: str | None) -> str:
    """The SDK's language from an LTI locale: kk/kk-* -> kz, ru/ru-* -> ru, else en."""
    primary = (locale or "").strip().lower().replace("_", "-").split("-")[0]
    if primary in ("kk", "kz"):
        return "kz"
    return primary if primary in SDK_LANGUAGES else "en"


def exam_csp(*, sdk_url: str, exam_url: str | None, frame_ancestors: tuple[str, ...]) -> str:
    """The wrapper page's Content-Security-Policy: exactly the SDK, the exam and the LMS."""
    return headers.exam_csp(
        sdk_url=sdk_url,
        api_base=current_app.config.get("TRUSTEXAM_API_BASE"),
        exam_url=exam_url,
        lms_origins=frame_ancestors,
    )
