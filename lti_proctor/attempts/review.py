"""Human review of a reported attempt: the decisions and their audit trail.

The AI report only flags; an instructor's decision (no concern, concern confirmed, dismissed)
is what the gradebook finally follows. Every decision is a new row, never an update, so who
decided what and when stays on record. Domain core: no Flask, no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.attempts.models import Attempt
from lti_proctor.dbtypes import UtcDateTime
from lti_proctor.extensions import db
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.timeutil import utcnow

NOTE_MAX = 2000


class ReviewDecision(StrEnum):
    """What a person decided about a flagged attempt."""

    NO_CONCERN = "no_concern"
    CONCERN_CONFIRMED = "concern_confirmed"
    DISMISSED = "dismissed"


class ReviewError(ValueError):
    """The review cannot be recorded (no report yet, unknown decision, note too long)."""


class AttemptReview(db.Model):  # type: ignore[name-defined,misc]
    """One review decision, kept for ever: the latest row per attempt is the current decision."""

    __tablename__ = "attempt_review"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[str] = mapped_column(
        ForeignKey("attempt.id", ondelete="CASCADE"), index=True
    )
    decision: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    reviewer_sub: Mapped[str] = mapped_column(String(255))
    reviewer_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass(frozen=True)
class Reviewer:
    """Who reviews: the instructor as the validated launch names them."""

    sub: str
    name: str | None


def record_review(
    attempt: Attempt,
    decision: str,
    *,
    note: str | None,
    reviewer: Reviewer,
    now: datetime | None = None,
) -> AttemptReview:
    """Add a review decision for a reported attempt; the caller enqueues the gradebook update."""
    if attempt.state != "reported":
        raise ReviewError("Only an attempt with its proctoring report can be reviewed.")
    try:
        chosen = ReviewDecision(decision)
    except ValueError:
        raise ReviewError(f"Unknown review decision {decision!r}.") from None
    text = (note or "").strip() or None
    if text is not None and len(text) > NOTE_MAX:
        raise ReviewError(f"The note is longer than {NOTE_MAX} characters.")
    row = AttemptReview(
        attempt_id=attempt.id,
        decision=chosen.value,
        note=text,
        reviewer_sub=reviewer.sub[:255],
        reviewer_name=reviewer.name[:255] if reviewer.name else None,
        created_at=now or utcnow(),
    )
    db.session.add(row)
    db.session.flush()
    return row


def review_attempt(
    attempt: Attempt,
    decision: str,
    *,
    note: str | None,
    reviewer: Reviewer,
    now: datetime | None = None,
) -> AttemptReview:
    """Record a decision and queue the gradebook status it settles, once per decision."""
    row = record_review(attempt, decision, note=note, reviewer=reviewer, now=now)
    enqueue(
        "ags.publish_status",
        {"attempt_id": attempt.id, "state": attempt.state, "review_id": row.id},
        dedupe_key=f"ags:{attempt.id}:review:{row.id}",
    )
    return row


def get_current_review(attempt_id: str) -> AttemptReview | None:
    """The latest decision on the attempt, or None when nobody has reviewed it."""
    row: AttemptReview | None = db.session.scalars(
        select(AttemptReview)
        .where(AttemptReview.attempt_id == attempt_id)
        .order_by(AttemptReview.created_at.desc(), AttemptReview.id.desc())
        .limit(1)
    ).first()
    return row


def find_reviews(attempt_id: str) -> list[AttemptReview]:
    """Every decision on the attempt, oldest first: the audit trail."""
    return list(
        db.session.scalars(
            select(AttemptReview)
            .where(AttemptReview.attempt_id == attempt_id)
            .order_by(AttemptReview.created_at, AttemptReview.id)
        )
    )
