"""enqueue(): adds a job row to the current transaction; never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus, OutboxJob, utcnow


def enqueue(
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
) -> OutboxJob | None:
    """Add a job to the session; skip it when a todo/doing job has the same dedupe_key."""
    if dedupe_key is not None:
        pending = db.session.scalar(
            select(OutboxJob.id).where(
                OutboxJob.dedupe_key == dedupe_key,
                OutboxJob.status.in_([JobStatus.TODO.value, JobStatus.DOING.value]),
            )
        )
        if pending is not None:
            return None
    job = OutboxJob(
        kind=kind,
        payload=payload,
        dedupe_key=dedupe_key,
        status=JobStatus.TODO.value,
        attempts=0,
        scheduled_at=run_at or utcnow(),
        created_at=utcnow(),
    )
    db.session.add(job)
    db.session.flush()
    return job
