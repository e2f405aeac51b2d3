"""Attempt (one proctored attempt of a learner at an exam) and WebhookEvent (what the service sent).

The attempt's id is a random UUID string: it is session_data.external_id at the service and the
attempt_id echoed in its webhooks, so it is safe to show and cannot be guessed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.attempts.states import AttemptStatus
from lti_proctor.crypto import SealedText
from lti_proctor.dbtypes import UtcDateTime
from lti_proctor.extensions import db
from lti_proctor.timeutil import utcnow


class Attempt(db.Model):  # type: ignore[name-defined,misc]
    """One proctored attempt: its state, the service's session and what the page may reveal."""

    __tablename__ = "attempt"
    __table_args__ = (
        UniqueConstraint("exam_id", "learner_id", "number", name="uq_attempt_exam_learner_number"),
    )

    id: Mapped[str] = mapped_column(
        String(36), primary_key=True
    )  # uuid4 = session_data.external_id
    exam_id: Mapped[int] = mapped_column(ForeignKey("exam.id", ondelete="CASCADE"), index=True)
    learner_id: Mapped[int] = mapped_column(
        ForeignKey("learner.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per exam and learner
    state: Mapped[str] = mapped_column(String(16), default=AttemptStatus.CREATED.value)
    profile_name: Mapped[str] = mapped_column(String(64))
    start_proof: Mapped[str] = mapped_column(String(16), default="webhook")  # the profile's, frozen
    # Sealed at rest (crypto.py): both are credentials for this attempt.
    webhook_secret: Mapped[str] = mapped_column(SealedText)

    token: Mapped[str | None] = mapped_column(SealedText)  # the SDK's external_session.token
    token_refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    report_url: Mapped[str | None] = mapped_column(String(2048))  # instructors only
    session_url: Mapped[str | None] = mapped_column(String(2048))
    service_session_id: Mapped[str | None] = mapped_column(String(191))
    service_attempt_id: Mapped[str | None] = mapped_column(String(191))
    session_response: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # Revealed to the page only once the attempt has started.
    exam_url: Mapped[str | None] = mapped_column(String(2048))
    access_code: Mapped[str | None] = mapped_column(Text)  # sealed (exam_settings.seal_code)

    language: Mapped[str | None] = mapped_column(String(16))  # the launch's, for the gradebook
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the page's word only
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Set by `attempts reconcile` when the attempt stayed in its state longer than its profile
    # allows and the service could not settle it: a person must look. Cleared by the next move.
    flag_reason: Mapped[str | None] = mapped_column(String(255))
    flagged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @property
    def status(self) -> AttemptStatus:
        """The state as an AttemptStatus."""
        return AttemptStatus(self.state)


class WebhookEvent(db.Model):  # type: ignore[name-defined,misc]
    """One event from the service, kept raw; a re-delivery of the same event is not stored again.

    The event's identity is (attempt, kind, event_key): the service's event id when it sends one,
    else its timestamp, else the body's hash (proctoring/webhooks.py event_key).
    """

    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("attempt_id", "kind", "event_key", name="uq_webhook_event_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[str] = mapped_column(
        ForeignKey("attempt.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # start | finish
    event_key: Mapped[str] = mapped_column(String(255))  # id:<event id> | at:<time> | sha256:<hex>
    body_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the raw body
    raw_body: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
