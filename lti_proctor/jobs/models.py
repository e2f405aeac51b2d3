"""OutboxJob: one row per unit of outside work (gradebook update, report fetch)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.dbtypes import UtcDateTime
from lti_proctor.extensions import db
from lti_proctor.timeutil import utcnow


class JobStatus(StrEnum):
    """Life of a job: todo -> doing -> succeeded | failed (dead) | cancelled."""

    TODO = "todo"
    DOING = "doing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxJob(db.Model):  # type: ignore[name-defined,misc]
    """A job waiting for, or done by, a worker.

    While a worker runs a job, `locked_by`/`locked_at` name the claim and `lease_expires_at` says
    when another worker may take the job over (its worker is presumed dead after that).
    """

    __tablename__ = "outbox_job"
    __table_args__ = (Index("ix_outbox_job_due", "status", "scheduled_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.TODO.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), index=True)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
