"""LTI identities mapped to the proctoring service's external ids, and the Exam/Learner rows.

External ids (trustexam-api.md §4.2) are derived from what the launch says, never random, so a
relaunch finds the same records on our side and on the service's; they are hashed, so no LMS user
id, email or course id is readable in them. This module knows no Flask and no HTTP.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import JSON, ForeignKey, Integer, String, bindparam, inspect, select
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.dbtypes import UtcDateTime, insert_returning
from lti_proctor.extensions import db
from lti_proctor.timeutil import utcnow

ID_PREFIX = "lti:"
HASH_CHARS = 32  # 128 bits: ample against collisions, far under the service's 191-char limit
SERVICE_ID_MAX = 191


class GradebookClaim(Protocol):
    """The AGS endpoint claim of a launch, as far as the Exam row keeps it."""

    @property
    def scopes(self) -> Sequence[str]: ...
    @property
    def lineitems(self) -> str | None: ...
    @property
    def lineitem(self) -> str | None: ...


class RosterClaim(Protocol):
    """The NRPS claim of a launch, as far as the Exam row keeps it."""

    @property
    def context_memberships_url(self) -> str: ...


class LaunchFacts(Protocol):
    """What the rows here are synced from: a validated launch (lti.context.LaunchContext is one).

    A protocol rather than an import, so identity stays below the LTI protocol code.
    """

    @property
    def platform_id(self) -> int: ...
    @property
    def issuer(self) -> str: ...
    @property
    def deployment_id(self) -> str: ...
    @property
    def user_sub(self) -> str: ...
    @property
    def context_id(self) -> str | None: ...
    @property
    def context_title(self) -> str | None: ...
    @property
    def resource_link_id(self) -> str | None: ...
    @property
    def resource_link_title(self) -> str | None: ...
    @property
    def user_name(self) -> str | None: ...
    @property
    def given_name(self) -> str | None: ...
    @property
    def family_name(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def ags(self) -> GradebookClaim | None: ...
    @property
    def nrps(self) -> RosterClaim | None: ...


def _hashed(*parts: str) -> str:
    return ID_PREFIX + hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:HASH_CHARS]


def assignment_external_id(issuer: str, deployment_id: str, resource_link_id: str) -> str:
    """The assignment.external_id of one placement: lti:sha256(iss|deployment_id|link_id)[:32]."""
    return _hashed(issuer, deployment_id, resource_link_id)


def student_external_id(issuer: str, sub: str) -> str:
    """The service's student.external_id of one LMS user: lti:sha256(iss|sub)[:32]."""
    return _hashed(issuer, sub)


def group_external_id(issuer: str, context_id: str) -> str:
    """The service's group.external_id of one course: lti:sha256(iss|context_id)[:32]."""
    return _hashed(issuer, context_id)


class Exam(db.Model):  # type: ignore[name-defined,misc]
    """One proctored placement: a resource link of a deployment, with its gradebook endpoints."""

    __tablename__ = "exam"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(
        ForeignKey("lti_platform.id", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(255))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    context_id: Mapped[str | None] = mapped_column(String(255))
    context_title: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(SERVICE_ID_MAX), unique=True)
    group_external_id: Mapped[str | None] = mapped_column(String(SERVICE_ID_MAX))
    lineitems_url: Mapped[str | None] = mapped_column(String(1024))
    lineitem_url: Mapped[str | None] = mapped_column(String(1024))  # the LMS's own grade column
    # The tool's "Proctoring: <exam>" column, found or created once by the gradebook job.
    proctoring_lineitem_url: Mapped[str | None] = mapped_column(String(1024))
    ags_scopes: Mapped[list[str] | None] = mapped_column(JSON)
    # The course roster (NRPS) URL, as the latest launch carrying the claim gave it.
    memberships_url: Mapped[str | None] = mapped_column(String(1024))
    # The exam settings kept in the tool (deep linking, or a legacy link moved into the tool).
    settings_id: Mapped[int | None] = mapped_column(
        ForeignKey("exam_settings.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @property
    def display_name(self) -> str:
        """What the service and the pages call this exam."""
        return self.title or self.context_title or f"Exam {self.resource_link_id}"


class Learner(db.Model):  # type: ignore[name-defined,misc]
    """One LMS user as the tool knows them; name and email as the platform last shared them."""

    __tablename__ = "learner"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(
        ForeignKey("lti_platform.id", ondelete="CASCADE"), index=True
    )
    sub: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    external_id: Mapped[str] = mapped_column(String(SERVICE_ID_MAX), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @property
    def display_name(self) -> str:
        """The learner's name for the service; never the raw LMS user id."""
        joined = " ".join(p for p in (self.given_name, self.family_name) if p)
        return self.name or joined or "Student"


# What a start reads of the exam and the learner (the service's upsert, the attempt's keys):
# kept beside a start token, so POST /exam/start builds them without reading them again.
_EXAM_START_FIELDS = (
    "id",
    "platform_id",
    "deployment_id",
    "resource_link_id",
    "context_id",
    "context_title",
    "title",
    "external_id",
    "group_external_id",
)
_LEARNER_START_FIELDS = (
    "id",
    "platform_id",
    "sub",
    "external_id",
    "name",
    "given_name",
    "family_name",
    "email",
)


def start_snapshot(exam: Exam, learner: Learner) -> dict[str, dict[str, Any]]:
    """The exam's and learner's fields a start reads, as JSON-able values."""
    return {
        "exam": {name: getattr(exam, name) for name in _EXAM_START_FIELDS},
        "learner": {name: getattr(learner, name) for name in _LEARNER_START_FIELDS},
    }


def from_start_snapshot(values: Mapping[str, Any]) -> tuple[Exam, Learner] | None:
    """Read-only, unattached copies of the rows start_snapshot kept; None when it is not one."""
    try:
        exam = Exam(**{name: values["exam"][name] for name in _EXAM_START_FIELDS})
        learner = Learner(**{name: values["learner"][name] for name in _LEARNER_START_FIELDS})
    except (KeyError, TypeError):
        return None
    return exam, learner


def sync_exam_from_launch(ctx: LaunchFacts, *, now: datetime, copy_ok: bool = False) -> Exam:
    """Find or create the exam of a resource-link launch; refresh its titles and AGS endpoints.

    copy_ok: an exam the launch does not change may come back as a read-only copy, not in the
    session (a student's launch only reads it; link_exam_settings still works on it).
    """
    if not ctx.resource_link_id:
        raise ValueError("a resource link launch without resource_link.id has no exam")
    external_id = assignment_external_id(ctx.issuer, ctx.deployment_id, ctx.resource_link_id)
    exam: Exam = _sync_row(
        Exam,
        {
            "platform_id": ctx.platform_id,
            "deployment_id": ctx.deployment_id,
            "resource_link_id": ctx.resource_link_id,
            "external_id": external_id,
        },
        _exam_fields(ctx),
        now=now,
        copy_ok=copy_ok,
    )
    return exam


def _exam_fields(ctx: LaunchFacts) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "context_id": ctx.context_id,
        "group_external_id": group_external_id(ctx.issuer, ctx.context_id)
        if ctx.context_id
        else None,
        "context_title": _cut(ctx.context_title),
        "title": _cut(ctx.resource_link_title),
    }
    if ctx.ags is not None:  # a launch without the claim keeps the endpoints we know
        fields.update(
            lineitems_url=ctx.ags.lineitems,
            lineitem_url=ctx.ags.lineitem,
            ags_scopes=list(ctx.ags.scopes),
        )
    if ctx.nrps is not None:
        fields["memberships_url"] = ctx.nrps.context_memberships_url[:1024]
    return fields


def link_exam_settings(exam: Exam, settings_id: int, *, now: datetime) -> None:
    """Tie the placement to the exam settings kept in the tool (a no-op when already tied)."""
    if exam.settings_id == settings_id:
        return
    row: Exam | None = exam if inspect(exam).persistent else db.session.get(Exam, exam.id)
    if row is None:  # pragma: no cover - the copy was read in this transaction
        raise LookupError(f"exam {exam.id} is gone")
    _update(row, {"settings_id": settings_id}, now=now)
    exam.settings_id = settings_id  # the launch's copy says the same


def sync_learner_from_launch(ctx: LaunchFacts, *, now: datetime) -> Learner:
    """Find or create the launching user and store the name and email the platform shared now."""
    external_id = student_external_id(ctx.issuer, ctx.user_sub)
    # What the platform shares now wins: a privacy setting turned on later must clear old values.
    learner: Learner = _sync_row(  # the launch only reads it: a copy when nothing changed
        Learner,
        {"platform_id": ctx.platform_id, "sub": ctx.user_sub, "external_id": external_id},
        {
            "name": _cut(ctx.user_name),
            "given_name": _cut(ctx.given_name),
            "family_name": _cut(ctx.family_name),
            "email": _cut(ctx.email, 320),
        },
        now=now,
        copy_ok=True,
    )
    return learner


@functools.cache
def _by_external_id(model: Any) -> Any:
    """The launch's lookup of a row by external_id, built once: a launch runs it twice."""
    return select(model).where(model.external_id == bindparam("external_id"))


def _get_by_external_id(model: Any, external_id: str) -> Any:
    return db.session.scalar(_by_external_id(model), {"external_id": external_id})


@functools.cache
def _copy_by_external_id(model: Any) -> Any:
    """The row by external_id as plain columns (no ORM loading), built once."""
    table = model.__table__
    return select(table).where(table.c.external_id == bindparam("external_id"))


def _read_copy(model: Any, external_id: str) -> Any:
    """A read-only copy of the row, not in the session (cheaper than loading it), or None."""
    found = db.session.execute(_copy_by_external_id(model), {"external_id": external_id}).first()
    if found is None:
        return None
    return model(**{column.key: found._mapping[column] for column in model.__table__.columns})


def _sync_row(
    model: Any,
    key: Mapping[str, Any],
    fields: Mapping[str, Any],
    *,
    now: datetime,
    copy_ok: bool = False,
) -> Any:
    """The row with key's external_id holding fields: read once, written only when it changes.

    A new row is inserted with its fields in one statement and comes back from it; when a
    concurrent launch inserted it first, that row is read and updated like any other. With
    copy_ok a row that already holds fields comes back as a read-only copy (_read_copy).
    """
    if copy_ok:
        copy = _read_copy(model, key["external_id"])
        if copy is not None and all(getattr(copy, k) == v for k, v in fields.items()):
            return copy
        row = None if copy is None else _get_by_external_id(model, key["external_id"])
    else:
        row = _get_by_external_id(model, key["external_id"])
    if row is None:
        values = {**key, **fields, "created_at": now, "updated_at": now}
        row = insert_returning(model, values, unique_on=["external_id"])
        if row is not None:
            return row
        row = _get_by_external_id(model, key["external_id"])
    assert row is not None  # inserted by the transaction we waited for
    _update(row, fields, now=now)
    return row


def _update(row: Exam | Learner, fields: Mapping[str, Any], *, now: datetime) -> None:
    """Set fields that changed; touch updated_at only then, so a plain relaunch writes nothing."""
    changed = False
    for key, value in fields.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    if changed:
        row.updated_at = now
        db.session.flush()


def _cut(value: str | None, limit: int = 255) -> str | None:
    return value[:limit] if value else None
