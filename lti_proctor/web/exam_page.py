"""Building blocks of the exam page: signed attempt tokens, the SDK language and the page's CSP.

Tokens are itsdangerous signatures on SECRET_KEY with one salt per purpose (api, open, retry), so a
token made for one purpose never works for another. Nothing here reads the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_proctor.attempts.models import Attempt

SDK_LANGUAGES = ("en", "ru", "kz")
API_TOKEN_TTL_S = 3600  # sliding: every API answer carries a fresh token
_SALT = "lti-proctor.exam."
NONE = "'none'"


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
    return payload if isinstance(payload, dict) else None


def token_ttl() -> int:
    """How long a page token or new-window link stays valid (PROCTOR_PAGE_TOKEN_TTL_S)."""
    return int(current_app.config.get("PROCTOR_PAGE_TOKEN_TTL_S", API_TOKEN_TTL_S))


def api_token(attempt: Attempt) -> str:
    """The page's bearer token for the attempt API."""
    return sign("api", {"a": attempt.id})


def open_url(attempt: Attempt, page: PageContext) -> str:
    """A signed link that opens the same attempt's page in a new window."""
    payload = {"a": attempt.id, "l": page.language, "r": page.return_url, "m": page.max_attempts}
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


def origin_of(url: str | None) -> str | None:
    """scheme://host[:port] of an http(s) URL, else None."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def exam_csp(*, sdk_url: str, exam_url: str | None, frame_ancestors: tuple[str, ...]) -> str:
    """The wrapper page's Content-Security-Policy: exactly the SDK, the exam and the LMS."""
    sdk = origin_of(sdk_url) or ""
    api = origin_of(current_app.config.get("TRUSTEXAM_API_BASE"))
    connect = " ".join(dict.fromkeys(o for o in ("'self'", sdk, api) if o))
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {sdk}".strip(),
            f"connect-src {connect}",
            # The SDK's widget may inject styles and show camera snapshots.
            f"style-src 'self' 'unsafe-inline' {sdk}".strip(),
            f"img-src 'self' data: blob: {sdk}".strip(),
            "media-src 'self' blob:",
            f"frame-src {origin_of(exam_url) or NONE}",
            " ".join(["frame-ancestors 'self'", *frame_ancestors]),
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )
