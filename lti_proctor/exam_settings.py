"""Exam settings kept in the tool: what an instructor set up by deep linking or in the Settings tab.

The LMS's link carries only the opaque reference (`custom: {"exam": "<ref>"}`); the exam URL,
access code, profile, attempts and window live here, owned by the course they were made in
(platform + deployment + context), so nothing secret ever rides through a student's browser.
Domain core: plain values in and out, no Flask, no HTTP.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.dbtypes import UtcDateTime
from lti_proctor.extensions import db
from lti_proctor.timeutil import utcnow

REF_PREFIX = "ex_"
TITLE_MAX = 255
URL_MAX = 2048
CODE_MAX = 255
MAX_ATTEMPTS_LIMIT = 20


class ExamSettings(db.Model):  # type: ignore[name-defined,misc]
    """One proctored exam as the instructor set it up, owned by one course of one deployment."""

    __tablename__ = "exam_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)  # the link's custom `exam`
    platform_id: Mapped[int] = mapped_column(
        ForeignKey("lti_platform.id", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(255))
    context_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    exam_url: Mapped[str | None] = mapped_column(String(URL_MAX))
    access_code: Mapped[str | None] = mapped_column(Text)  # sealed at rest
    profile: Mapped[str] = mapped_column(String(64))
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    opens_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closes_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    review_threshold: Mapped[float | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(255))  # the instructor's LTI sub
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass(frozen=True)
class Owner:
    """The course an exam belongs to: only launches from it may use the exam."""

    platform_id: int
    deployment_id: str
    context_id: str


@dataclass(frozen=True)
class SettingsInput:
    """Validated form values of an exam's settings."""

    title: str
    exam_url: str | None
    access_code: str | None
    profile: str
    max_attempts: int
    opens_at: datetime | None
    closes_at: datetime | None
    review_threshold: float | None


@dataclass
class SettingsErrors(Exception):
    """The form has errors: field name -> plain sentence. Nothing was stored."""

    fields: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.fields.items())


def _text(form: Mapping[str, str], name: str) -> str:
    return (form.get(name) or "").strip()


def _moment(value: str) -> datetime:
    """An ISO date-time; one without a zone is UTC (the form sends UTC, converted in the page)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _title(raw: str) -> str:
    if not raw:
        raise ValueError("Give the exam a title.")
    if len(raw) > TITLE_MAX:
        raise ValueError(f"The title is longer than {TITLE_MAX} characters.")
    return raw


def _exam_url(raw: str) -> str | None:
    if raw and (len(raw) > URL_MAX or not _http_url(raw)):
        raise ValueError("The exam URL must be a web address starting with https:// or http://.")
    return raw or None


def _access_code(raw: str) -> str | None:
    if len(raw) > CODE_MAX:
        raise ValueError(f"The access code is longer than {CODE_MAX} characters.")
    return raw or None


def _max_attempts(raw: str) -> int:
    message = f"Attempts must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}."
    try:
        value = int(raw or "1")
    except ValueError:
        raise ValueError(message) from None
    if not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise ValueError(message)
    return value


def _optional_moment(raw: str) -> datetime | None:
    try:
        return _moment(raw) if raw else None
    except ValueError:
        raise ValueError("Give a date and time, or leave it empty.") from None


def _threshold(raw: str) -> float | None:
    message = "The review threshold is a number from 0 to 100."
    try:
        value = float(raw) if raw else None
    except ValueError:
        raise ValueError(message) from None
    if value is not None and not 0 <= value <= 100:
        raise ValueError(message)
    return value


_FIELDS: dict[str, Callable[[str], object]] = {
    "title": _title,
    "exam_url": _exam_url,
    "access_code": _access_code,
    "max_attempts": _max_attempts,
    "opens_at": _optional_moment,
    "closes_at": _optional_moment,
    "review_threshold": _threshold,
}


def parse_settings_form(form: Mapping[str, str], *, profiles: Collection[str]) -> SettingsInput:
    """Check the settings form; SettingsErrors names every bad field and nothing is stored."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, check in _FIELDS.items():
        try:
            values[name] = check(_text(form, name))
        except ValueError as exc:
            errors[name] = str(exc)
    values["profile"] = _text(form, "profile")
    if values["profile"] not in profiles:
        errors["profile"] = "Choose one of the proctoring profiles listed."
    opens, closes = values.get("opens_at"), values.get("closes_at")
    if opens and closes and closes <= opens:
        errors.setdefault("closes_at", "The exam must close after it opens.")
    if errors:
        raise SettingsErrors(errors)
    return SettingsInput(**values)


def new_ref() -> str:
    """An opaque, unguessable exam reference (128+ bits)."""
    return REF_PREFIX + secrets.token_urlsafe(18)


def create_settings(owner: Owner, values: SettingsInput, *, created_by: str | None) -> ExamSettings:
    """Store a new exam's settings for owner's course; the caller commits."""
    row = ExamSettings(
        ref=new_ref(),
        platform_id=owner.platform_id,
        deployment_id=owner.deployment_id,
        context_id=owner.context_id,
        created_by=created_by,
    )
    _apply(row, values)
    db.session.add(row)
    db.session.flush()
    return row


def update_settings(row: ExamSettings, values: SettingsInput) -> None:
    """Change an exam's settings; the next attempts use them. The caller commits."""
    _apply(row, values)
    row.updated_at = utcnow()
    db.session.flush()


def _apply(row: ExamSettings, values: SettingsInput) -> None:
    row.title = values.title
    row.exam_url = values.exam_url
    row.access_code = values.access_code
    row.profile = values.profile
    row.max_attempts = values.max_attempts
    row.opens_at, row.closes_at = values.opens_at, values.closes_at
    row.review_threshold = values.review_threshold


def get_settings_for(owner: Owner, ref: str) -> ExamSettings | None:
    """The exam `ref` if it belongs to owner's course; None for another course's or none at all."""
    if not ref.startswith(REF_PREFIX) or len(ref) > 64:
        return None
    row: ExamSettings | None = db.session.scalars(
        select(ExamSettings).where(
            ExamSettings.ref == ref,
            ExamSettings.platform_id == owner.platform_id,
            ExamSettings.deployment_id == owner.deployment_id,
            ExamSettings.context_id == owner.context_id,
        )
    ).first()
    return row


def move_access_code(row: ExamSettings, code: str) -> None:
    """Keep a code that a legacy link carried in its custom parameters on the server instead."""
    row.access_code = code.strip()[:CODE_MAX] or None
    row.updated_at = utcnow()
    db.session.flush()
