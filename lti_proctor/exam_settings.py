"""Exam settings kept in the tool: what an instructor set up by deep linking or in the Settings tab.

The LMS's link carries only the opaque reference (`custom: {"exam": "<ref>"}`); the exam URL,
access code, profile, attempts and window live here, owned by the course they were made in
(platform + deployment + context), so nothing secret ever rides through a student's browser.
Domain core: plain values in and out, no HTTP; Flask only for the key of the access-code seal.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import ForeignKey, Integer, String, Text, bindparam, select
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.crypto import get_sealer
from lti_proctor.dbtypes import UtcDateTime
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, link_exam_settings
from lti_proctor.reasons import Reason
from lti_proctor.timeutil import utcnow

REF_PREFIX = "ex_"
TITLE_MAX = 255
URL_MAX = 2048
CODE_MAX = 255
MAX_ATTEMPTS_LIMIT = 20


# -- the access code at rest ----------------------------------------------------------------------
# The one seam for sealing access codes (here, on attempts and in the shared store): the tool's
# sealer (crypto.py: LTI_PROCTOR_ENCRYPTION_KEY, or a key derived from the secret key). The
# columns stay plain text holding `sealed:` values, so a reader sees exactly what a dump holds;
# `lti-proctor keys rotate-encryption` re-seals them with the rest (reseal_access_codes()).


def seal_code(code: str | None) -> str | None:
    """An access code as stored: encrypted, never the plain text; None stays None."""
    return get_sealer().seal(code) if code else None


def unseal_code(stored: str | None) -> str | None:
    """The plain access code of a stored value (one stored before sealing is read as it is)."""
    return get_sealer().unseal(stored) if stored else None


def reseal_access_codes() -> int:
    """Seal every stored access code again under the current key; the count (caller commits)."""
    from lti_proctor.attempts.models import Attempt

    rows: list[ExamSettings | Attempt] = [
        *db.session.scalars(select(ExamSettings).where(ExamSettings.access_code.is_not(None))),
        *db.session.scalars(select(Attempt).where(Attempt.access_code.is_not(None))),
    ]
    for row in rows:
        row.access_code = seal_code(unseal_code(row.access_code))
    db.session.flush()
    return len(rows)


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
    row.access_code = seal_code(values.access_code)
    row.profile = values.profile
    row.max_attempts = values.max_attempts
    row.opens_at, row.closes_at = values.opens_at, values.closes_at
    row.review_threshold = values.review_threshold


def get_settings_for(owner: Owner, ref: str) -> ExamSettings | None:
    """The exam `ref` if it belongs to owner's course; None for another course's or none at all."""
    if not ref.startswith(REF_PREFIX) or len(ref) > 64:
        return None
    params = {
        "ref": ref,
        "platform_id": owner.platform_id,
        "deployment_id": owner.deployment_id,
        "context_id": owner.context_id,
    }
    row: ExamSettings | None = db.session.scalars(_owned_ref_query(), params).first()
    return row


@functools.cache
def _owned_ref_query() -> Any:
    """Settings by reference within one course: built once, run at every student launch."""
    return select(ExamSettings).where(
        ExamSettings.ref == bindparam("ref"),
        ExamSettings.platform_id == bindparam("platform_id"),
        ExamSettings.deployment_id == bindparam("deployment_id"),
        ExamSettings.context_id == bindparam("context_id"),
    )


def move_access_code(row: ExamSettings, code: str) -> None:
    """Keep a code that a legacy link carried in its custom parameters on the server instead."""
    row.access_code = seal_code(code.strip()[:CODE_MAX] or None)
    row.updated_at = utcnow()
    db.session.flush()


# -- what a launch of an exam link uses --------------------------------------------------------


class ExamUnavailableError(Exception):
    """The launch cannot use this exam; `reason` is a Reason code (launch.exam_not_found, ...)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class ExamPlan:
    """What a launch of the link starts: the settings row (None for a legacy link) and content."""

    settings: ExamSettings | None
    exam_url: str | None
    access_code: str | None
    profile_name: str | None
    max_attempts: str | int | None


def find_settings_for_launch(
    owner: Owner, *, ref: str | None, linked_id: int | None
) -> ExamSettings | None:
    """The link's settings: its `exam` reference, else those the placement was moved to.

    ExamUnavailableError(launch.exam_not_found) when the reference is not this course's.
    """
    if ref:
        row = get_settings_for(owner, ref)
        if row is None:
            raise ExamUnavailableError(Reason.EXAM_NOT_FOUND, "exam reference not in course")
        return row
    linked = db.session.get(ExamSettings, linked_id) if linked_id else None
    if linked is not None and _owned_by(linked, owner):
        return linked
    return None


def plan_student_launch(
    owner: Owner,
    *,
    ref: str | None,
    linked_id: int | None,
    custom: Mapping[str, str],
    now: datetime,
) -> ExamPlan:
    """What a learner's launch starts; ExamUnavailableError when it must not start at all.

    Settings kept in the tool win. A legacy link (custom parameters only) keeps its exam_url,
    proctoring_profile and max_attempts, but never starts with a custom access_code: students
    could read it in the launch, so they are asked to tell their instructor instead.
    """
    row = find_settings_for_launch(owner, ref=ref, linked_id=linked_id)
    if row is None:
        if (custom.get("access_code") or "").strip():
            raise ExamUnavailableError(Reason.ACCESS_CODE_EXPOSED, "custom access_code")
        return ExamPlan(
            None,
            (custom.get("exam_url") or "").strip() or None,
            None,
            custom.get("proctoring_profile"),
            custom.get("max_attempts"),
        )
    if (row.opens_at and now < row.opens_at) or (row.closes_at and now >= row.closes_at):
        raise ExamUnavailableError(Reason.EXAM_NOT_OPEN, "outside the exam window")
    return ExamPlan(row, row.exam_url, unseal_code(row.access_code), row.profile, row.max_attempts)


def _owned_by(row: ExamSettings, owner: Owner) -> bool:
    return (row.platform_id, row.deployment_id, row.context_id) == (
        owner.platform_id,
        owner.deployment_id,
        owner.context_id,
    )


def settings_from_legacy(
    custom: Mapping[str, str], *, title: str, profiles: Collection[str], default_profile: str
) -> SettingsInput:
    """A legacy link's custom parameters as settings, to move them into the tool."""
    profile = (custom.get("proctoring_profile") or "").strip()
    try:
        attempts = _max_attempts((custom.get("max_attempts") or "").strip())
    except ValueError:
        attempts = 1
    try:
        exam_url = _exam_url((custom.get("exam_url") or "").strip())
    except ValueError:
        exam_url = None
    return SettingsInput(
        title=(title or "Exam")[:TITLE_MAX],
        exam_url=exam_url,
        access_code=_access_code((custom.get("access_code") or "").strip()[:CODE_MAX]),
        profile=profile if profile in profiles else default_profile,
        max_attempts=attempts,
        opens_at=None,
        closes_at=None,
        review_threshold=None,
    )


# -- legacy links carrying an access code -------------------------------------------------------
LEGACY_KEY = "legacy-link:"
LEGACY_TTL_S = 3600  # as long as the instructor pages' token; every instructor launch renews it
LEGACY_PARAMS = ("exam_url", "access_code", "proctoring_profile", "max_attempts")


class KeyValueStore(Protocol):
    """The part of the shared store the legacy-link note uses."""

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl_s: float) -> None: ...
    def delete(self, key: str) -> None: ...


def remember_legacy_link(store: KeyValueStore, exam_id: int, custom: Mapping[str, str]) -> None:
    """Note a legacy link's custom parameters (code sealed) so "move it into the tool" can."""
    kept = {k: str(custom[k]) for k in LEGACY_PARAMS if custom.get(k)}
    kept["access_code"] = seal_code(kept.get("access_code")) or ""
    store.set(LEGACY_KEY + str(exam_id), json.dumps(kept), LEGACY_TTL_S)


def get_legacy_link(store: KeyValueStore, exam_id: int) -> dict[str, str] | None:
    """The legacy custom parameters an instructor launch noted (code unsealed), or None."""
    raw = store.get(LEGACY_KEY + str(exam_id))
    if not raw:
        return None
    kept: dict[str, str] = json.loads(raw)
    kept["access_code"] = unseal_code(kept.get("access_code")) or ""
    return kept


def forget_legacy_link(store: KeyValueStore, exam_id: int) -> None:
    """Drop the note once the code lives in the tool."""
    store.delete(LEGACY_KEY + str(exam_id))


# -- the instructor's Settings tab --------------------------------------------------------------


def owner_of(exam: Exam) -> Owner:
    """The course a placement belongs to."""
    return Owner(exam.platform_id, exam.deployment_id, exam.context_id or "")


def get_exam_settings(exam: Exam) -> ExamSettings | None:
    """The settings the placement uses, if they are kept in the tool (and still its course's)."""
    row = db.session.get(ExamSettings, exam.settings_id) if exam.settings_id else None
    return row if row is not None and _owned_by(row, owner_of(exam)) else None


def save_exam_settings(
    exam: Exam, values: SettingsInput, *, created_by: str | None, now: datetime
) -> ExamSettings:
    """Change the placement's settings (or keep new ones for a legacy link) for next attempts."""
    row = get_exam_settings(exam)
    if row is None:
        row = create_settings(owner_of(exam), values, created_by=created_by)
        link_exam_settings(exam, row.id, now=now)
    else:
        update_settings(row, values)
    return row


def settings_form_values(row: ExamSettings | None, *, title: str) -> dict[str, str]:
    """The Settings tab's form, filled from the stored settings (the code only behind Show)."""
    if row is None:
        return {"title": title}
    return {
        "title": row.title,
        "exam_url": row.exam_url or "",
        "access_code": unseal_code(row.access_code) or "",
        "profile": row.profile,
        "max_attempts": str(row.max_attempts),
        "opens_at": _local(row.opens_at),
        "closes_at": _local(row.closes_at),
        "review_threshold": "" if row.review_threshold is None else f"{row.review_threshold:g}",
    }


def _local(moment: datetime | None) -> str:
    """A UTC moment as a datetime-local input's value."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else ""
