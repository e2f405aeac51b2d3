"""The outbox's operations: enqueue() a job in the current transaction, list, revive, prune jobs.

Nothing here commits: enqueue() adds its row to the caller's transaction, so the job exists if and
only if the state change that caused it was committed. The request, job or command edge commits.
enqueue_now() is the hot path's form (a webhook's jobs): every job due now in one statement,
with no object loaded and, on PostgreSQL, the workers' NOTIFY riding in it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    FromClause,
    Insert,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    union_all,
    update,
)

from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus, OutboxJob
from lti_proctor.metrics import OutboxGauge
from lti_proctor.timeutil import utcnow

# PostgreSQL channel on which enqueue() wakes idle workers (LISTEN in jobs/worker.py).
NOTIFY_CHANNEL = "lti_proctor_outbox"
_OPEN_STATUSES = (JobStatus.TODO.value, JobStatus.DOING.value, JobStatus.FAILED.value)


def enqueue(
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
) -> OutboxJob | None:
    """Add a job to the session; skip it (return None) when a todo job has the same dedupe_key.

    Only waiting (todo) jobs dedupe: a job already running may have read the state before the
    change that enqueues this one, so skipping behind it could lose an update. Dedupe saves work;
    it is no guarantee (two concurrent transactions may both enqueue), so handlers are idempotent.
    """
    if not kind:
        raise ValueError("a job needs a kind")
    if dedupe_key is not None and get_waiting_job_id(dedupe_key) is not None:
        return None
    now = utcnow()
    job = OutboxJob(
        kind=kind,
        payload=payload,
        dedupe_key=dedupe_key,
        status=JobStatus.TODO.value,
        attempts=0,
        scheduled_at=run_at or now,
        created_at=now,
    )
    db.session.add(job)
    db.session.flush()
    if job.scheduled_at <= now:
        notify_workers()
    return job


@dataclass(frozen=True)
class NewJob:
    """A job for enqueue_now(): what enqueue() takes, due at once."""

    kind: str
    payload: dict[str, Any]
    dedupe_key: str | None = None


def enqueue_now(jobs: Sequence[NewJob]) -> int:
    """Add jobs due now to the current transaction in ONE statement; return how many were added.

    The rules of enqueue() (a job whose dedupe_key has a todo job is skipped), decided by the
    database in the same `INSERT ... SELECT ... WHERE NOT EXISTS`; on PostgreSQL its RETURNING
    also NOTIFYs the idle workers (delivered when the transaction commits, folded into one).
    """
    if not jobs:
        return 0
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    stmt = _enqueue_statement(job_shape(jobs), postgresql)
    return len(db.session.execute(stmt, job_params(jobs)).all())


def job_shape(jobs: Sequence[NewJob]) -> tuple[bool, ...]:
    """What the statement of these jobs depends on: how many, and which have a dedupe_key."""
    if not all(job.kind for job in jobs):
        raise ValueError("a job needs a kind")
    return tuple(job.dedupe_key is not None for job in jobs)


def job_params(jobs: Sequence[NewJob]) -> dict[str, Any]:
    """The parameters of jobs_insert() for these jobs, due now."""
    params: dict[str, Any] = {"job_now": utcnow(), "job_todo": JobStatus.TODO.value}
    for i, job in enumerate(jobs):
        params.update({f"kind_{i}": job.kind, f"payload_{i}": job.payload})
        if job.dedupe_key is not None:
            params[f"key_{i}"] = job.dedupe_key
    return params


@functools.cache
def _enqueue_statement(deduped: tuple[bool, ...], postgresql: bool) -> Insert:
    stmt = jobs_insert(deduped)
    c = OutboxJob.__table__.c
    if postgresql:
        return stmt.returning(c.id, func.pg_notify(NOTIFY_CHANNEL, ""))
    return stmt.returning(c.id)


def jobs_insert(deduped: tuple[bool, ...], *, after: FromClause | None = None) -> Insert:
    """`INSERT ... SELECT` of jobs shaped so (job_shape), due now, each skipped when a todo job
    has its dedupe_key; with `after`, one row per row of it (none when it is empty)."""
    table = OutboxJob.__table__
    c = table.c
    now = bindparam("job_now", type_=c.created_at.type)
    todo = bindparam("job_todo", type_=c.status.type)
    rows = []
    for i, has_key in enumerate(deduped):
        key = bindparam(f"key_{i}", type_=c.dedupe_key.type) if has_key else None
        row = select(
            bindparam(f"kind_{i}", type_=c.kind.type),
            bindparam(f"payload_{i}", type_=c.payload.type),
            todo,
            literal(0, c.attempts.type),
            now,
            key if key is not None else literal(None, c.dedupe_key.type),
            now,
        )
        if after is not None:
            row = row.select_from(after)
        if key is not None:
            waiting = select(c.id).where(c.dedupe_key == key, c.status == todo)
            row = row.where(~exists(waiting))
        rows.append(row)
    source = rows[0] if len(rows) == 1 else union_all(*rows)
    columns = [c.kind, c.payload, c.status, c.attempts, c.scheduled_at, c.dedupe_key, c.created_at]
    stmt: Insert = table.insert().from_select(columns, source)
    return stmt


def notify_workers() -> None:
    """PostgreSQL: wake the idle workers when this transaction commits (nothing on rollback).

    NOTIFY is transactional and PostgreSQL folds identical notifications of one transaction into
    one, so a burst of enqueues costs the workers one wake-up. Elsewhere workers poll.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def get_waiting_job_id(dedupe_key: str) -> int | None:
    """The id of a todo job with dedupe_key, or None."""
    return db.session.scalar(
        select(OutboxJob.id)
        .where(OutboxJob.dedupe_key == dedupe_key, OutboxJob.status == JobStatus.TODO.value)
        .limit(1)
    )


def find_jobs(*, status: JobStatus | None = None, limit: int = 20) -> Sequence[OutboxJob]:
    """The most recent jobs, newest first, optionally only those with status."""
    query = select(OutboxJob).order_by(OutboxJob.id.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxJob.status == status.value)
    return db.session.scalars(query).all()


def count_jobs_by_status() -> dict[str, int]:
    """How many jobs have each status (statuses with no job are left out)."""
    rows = db.session.execute(
        select(OutboxJob.status, func.count()).group_by(OutboxJob.status)
    ).all()
    return {status: count for status, count in rows}


def revive_job(job: OutboxJob, *, now: datetime | None = None) -> None:
    """Put a dead (failed) job back in the queue, due now, with its attempts reset."""
    if job.status != JobStatus.FAILED.value:
        raise ValueError(f"job {job.id} is {job.status}, not dead (failed)")
    job.status = JobStatus.TODO.value
    job.attempts = 0
    job.scheduled_at = now or utcnow()
    job.locked_by = job.locked_at = job.lease_expires_at = None
    db.session.flush()


def revive_dead_jobs(*, now: datetime | None = None) -> int:
    """Put every dead (failed) job back in the queue, due now; return how many."""
    result = db.session.execute(
        update(OutboxJob)
        .where(OutboxJob.status == JobStatus.FAILED.value)
        .values(
            status=JobStatus.TODO.value,
            attempts=0,
            scheduled_at=now or utcnow(),
            locked_by=None,
            locked_at=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return int(getattr(result, "rowcount", 0))


def prune_succeeded_jobs(*, older_than_s: float, now: datetime | None = None) -> int:
    """Delete succeeded jobs created more than older_than_s ago; return how many went."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_s)
    result = db.session.execute(
        delete(OutboxJob)
        .where(OutboxJob.status == JobStatus.SUCCEEDED.value, OutboxJob.created_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def find_outbox_gauges(*, now: datetime | None = None) -> list[OutboxGauge]:
    """Open jobs (todo, doing, failed) by kind and status, with the oldest due todo job's age."""
    moment = now or utcnow()
    due_since = case(
        (
            and_(OutboxJob.status == JobStatus.TODO.value, OutboxJob.scheduled_at <= moment),
            OutboxJob.scheduled_at,
        )
    )
    rows = db.session.execute(
        select(OutboxJob.kind, OutboxJob.status, func.count(), func.min(due_since))
        .where(OutboxJob.status.in_(_OPEN_STATUSES))
        .group_by(OutboxJob.kind, OutboxJob.status)
    ).all()
    return [
        OutboxGauge(kind, status, int(count), _age_s(moment, oldest))
        for kind, status, count, oldest in rows
    ]


def _age_s(now: datetime, since: datetime | None) -> float | None:
    if since is None:
        return None
    aware = since if since.tzinfo else since.replace(tzinfo=now.tzinfo)  # SQLite drops the zone
    return max(0.0, (now - aware).total_seconds())
