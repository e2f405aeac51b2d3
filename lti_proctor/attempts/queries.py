"""Read-only queries behind the instructor view: an exam's attempts with their learners and reports.

Domain core: plain values out (no ORM rows escape), no Flask. Every query is scoped to one exam,
so a caller holding an exam id can never read another exam's attempts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.reports import AttemptReportRow
from lti_proctor.extensions import db
from lti_proctor.identity import Learner
from lti_proctor.proctoring.webhooks import parse_time


@dataclass(frozen=True)
class AttemptOverview:
    """One row of the instructor's attempt list; report fields are None until the report is in."""

    id: str
    number: int
    state: str
    student_name: str
    student_email: str | None
    started_at: datetime | None
    finished_at: datetime | None
    report_url: str | None
    risk_score: float | None = None
    risk_source: str | None = None
    risk_level: str | None = None
    violation_count: int | None = None
    needs_review: bool | None = None
    flag_reason: str | None = None  # set by `attempts reconcile`: a person must look


@dataclass(frozen=True)
class AttemptDetail:
    """One attempt with its whole report: violations, timeline (by time), recommendations."""

    overview: AttemptOverview
    violations: Sequence[Mapping[str, Any]]
    timeline: Sequence[Mapping[str, Any]]
    recommendations: Sequence[str]
    summary: str | None
    fetched_at: datetime | None


def _rows(exam_id: int, attempt_id: str | None = None) -> Any:
    query = (
        select(Attempt, Learner, AttemptReportRow)
        .join(Learner, Learner.id == Attempt.learner_id)
        .outerjoin(AttemptReportRow, AttemptReportRow.attempt_id == Attempt.id)
        .where(Attempt.exam_id == exam_id)
    )
    if attempt_id is not None:
        query = query.where(Attempt.id == attempt_id)
    return db.session.execute(query).all()


def _overview(
    attempt: Attempt, learner: Learner, report: AttemptReportRow | None
) -> AttemptOverview:
    overview = AttemptOverview(
        id=attempt.id,
        number=attempt.number,
        state=attempt.state,
        student_name=learner.display_name,
        student_email=learner.email,
        started_at=attempt.started_at,
        finished_at=attempt.finished_at,
        report_url=attempt.report_url,
        flag_reason=attempt.flag_reason,
    )
    if report is None:
        return overview
    return replace(
        overview,
        risk_score=report.risk_score,
        risk_source=report.risk_source,
        risk_level=report.risk_level,
        violation_count=report.violation_count,
        needs_review=report.needs_review,
    )


def find_attempts_for_exam(exam_id: int) -> list[AttemptOverview]:
    """Every attempt at the exam, by student name, then attempt number."""
    found = [_overview(a, learner, r) for a, learner, r in _rows(exam_id)]
    return sorted(found, key=lambda o: (o.student_name.casefold(), o.student_email or "", o.number))


def get_attempt_detail(exam_id: int, attempt_id: str) -> AttemptDetail | None:
    """The attempt with its report, or None when it is not an attempt at this exam."""
    rows = _rows(exam_id, attempt_id) if attempt_id else []
    if not rows:
        return None
    attempt, learner, report = rows[0]
    return AttemptDetail(
        overview=_overview(attempt, learner, report),
        violations=list(report.violations or []) if report else [],
        timeline=sort_timeline(report.timeline or []) if report else [],
        recommendations=list(report.recommendations or []) if report else [],
        summary=report.summary if report else None,
        fetched_at=report.fetched_at if report else None,
    )


_LAST = datetime.max.replace(tzinfo=UTC)


def sort_timeline(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Timeline entries by time (then offset); entries without a readable time go last."""

    def key(entry: Mapping[str, Any]) -> tuple[datetime, float]:
        offset = entry.get("offset_sec")
        return (
            parse_time(entry.get("at")) or _LAST,
            float(offset) if isinstance(offset, int | float) else 0.0,
        )

    return sorted((e for e in entries if isinstance(e, Mapping)), key=key)
