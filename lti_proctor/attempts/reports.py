"""Stored AI reports: the AttemptReportRow model, recording a fetched report (finished -> reported)
and reading it back as a proctoring.types.AttemptReport for the gradebook.

Domain core: no Flask, no HTTP; the report.fetch job passes the fetched report in. Flushes only.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.attempts.grading import needs_review
from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.operations import mark_reported
from lti_proctor.dbtypes import UtcDateTime, insert_if_absent
from lti_proctor.extensions import db
from lti_proctor.proctoring.types import AttemptReport, Profile, TimelineEntry, Violation
from lti_proctor.timeutil import utcnow


class AttemptReportRow(db.Model):  # type: ignore[name-defined,misc]
    """The AI report of one attempt as the tool stored it (parsed fields plus the raw JSON)."""

    __tablename__ = "attempt_report"

    attempt_id: Mapped[str] = mapped_column(
        ForeignKey("attempt.id", ondelete="CASCADE"), primary_key=True
    )
    risk_score: Mapped[float | None] = mapped_column(Float)
    risk_source: Mapped[str] = mapped_column(String(32))  # overall_risk_score | credibility | none
    risk_level: Mapped[str | None] = mapped_column(String(64))
    violation_count: Mapped[int] = mapped_column(Integer, default=0)
    violations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    recommendations: Mapped[list[str]] = mapped_column(JSON)
    summary: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=True)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def get_report(attempt_id: str) -> AttemptReportRow | None:
    """The stored report of an attempt, or None while there is none."""
    return db.session.get(AttemptReportRow, attempt_id) if attempt_id else None


def record_report(
    attempt: Attempt, report: AttemptReport, profile: Profile, *, now: datetime
) -> bool:
    """Store the report, move the attempt to reported and queue the final gradebook status.

    One transaction for all three (the caller commits). A repeated call overwrites the stored
    report with the newer one; it returns False when the attempt was already reported.
    Raises AttemptStateError when the attempt is not finished.
    """
    values = _row_values(report, profile, now=now)
    added = insert_if_absent(
        AttemptReportRow, {"attempt_id": attempt.id, **values}, unique_on=["attempt_id"]
    )
    row = db.session.get(AttemptReportRow, attempt.id)
    assert row is not None  # inserted now, or by an earlier (or concurrent) fetch
    if not added:
        for key, value in values.items():
            setattr(row, key, value)
        db.session.flush()
    return mark_reported(attempt, now=now)


def _row_values(report: AttemptReport, profile: Profile, *, now: datetime) -> dict[str, Any]:
    return {
        "risk_score": report.risk_score,
        "risk_source": report.risk_source,
        "risk_level": report.risk_level,
        "violation_count": report.violation_count,
        "violations": [asdict(v) for v in report.violations],
        "timeline": [asdict(t) for t in report.timeline],
        "recommendations": list(report.recommendations),
        "summary": report.summary,
        "raw": dict(report.raw),
        "needs_review": needs_review(report.risk_score, profile),
        "fetched_at": now,
    }


def as_attempt_report(row: AttemptReportRow) -> AttemptReport:
    """The stored report as the plain value the gradebook rules take."""
    source = row.risk_source if row.risk_source in ("overall_risk_score", "credibility") else "none"
    return AttemptReport(
        risk_score=row.risk_score,
        risk_source=source,  # type: ignore[arg-type]
        risk_level=row.risk_level,
        summary=row.summary,
        violations=tuple(_violation(v) for v in row.violations or () if isinstance(v, dict)),
        timeline=tuple(_entry(t) for t in row.timeline or () if isinstance(t, dict)),
        recommendations=tuple(str(r) for r in row.recommendations or ()),
        raw=dict(row.raw or {}),
    )


def _violation(data: dict[str, Any]) -> Violation:
    return Violation(
        type=str(data.get("type") or "unknown"),
        count=int(data.get("count") or 1),
        severity=data.get("severity"),
    )


def _entry(data: dict[str, Any]) -> TimelineEntry:
    offset = data.get("offset_sec")
    return TimelineEntry(
        at=data.get("at"),
        action_type=str(data.get("action_type") or "unknown"),
        is_warning=bool(data.get("is_warning")),
        description=data.get("description"),
        offset_sec=float(offset) if isinstance(offset, int | float) else None,
    )
