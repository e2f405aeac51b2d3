from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus, OutboxJob
from lti_proctor.jobs.outbox import enqueue, find_jobs, revive_dead_jobs, revive_job
from lti_proctor.store import StoreEntry
from lti_proctor.timeutil import utcnow

from .conftest import reload


def committed_jobs(app: Flask) -> list[tuple[str, str | None]]:
    """What another connection sees in the outbox: (kind, dedupe_key) rows."""
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(OutboxJob.kind, OutboxJob.dedupe_key).order_by(OutboxJob.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def committed_store_keys() -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.scalars(sa.select(StoreEntry.key)))


def state_change(key: str) -> None:
    """A stand-in for an attempt change: any other row in the same transaction."""
    db.session.add(StoreEntry(key=key, value="x", expires_at=utcnow() + timedelta(hours=1)))


def test_job_commits_together_with_the_state_change_that_caused_it(app: Flask, ctx: None) -> None:
    state_change("attempt-1")
    job = enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="ags:1:finished")
    assert job is not None and job.id is not None
    assert committed_jobs(app) == []  # enqueue never commits on its own

    db.session.commit()

    assert committed_jobs(app) == [("ags.publish_status", "ags:1:finished")]
    assert committed_store_keys() == ["attempt-1"]


def test_rolled_back_state_change_leaves_no_job(app: Flask, ctx: None) -> None:
    state_change("attempt-1")
    enqueue("ags.publish_status", {"attempt_id": 1})

    db.session.rollback()

    assert committed_jobs(app) == []
    assert committed_store_keys() == []


def test_enqueue_stores_a_due_todo_job_with_its_payload(ctx: None) -> None:
    before = utcnow()
    job = enqueue("report.fetch", {"attempt_id": 7, "nested": {"a": [1, 2]}})
    db.session.commit()
    assert job is not None

    stored = reload(job.id)
    assert (stored.kind, stored.status, stored.attempts) == ("report.fetch", "todo", 0)
    assert stored.payload == {"attempt_id": 7, "nested": {"a": [1, 2]}}
    assert before <= stored.scheduled_at <= utcnow()
    assert stored.scheduled_at.tzinfo is not None


def test_enqueue_run_at_schedules_the_job_later(ctx: None) -> None:
    later = utcnow() + timedelta(minutes=5)
    job = enqueue("report.fetch", {"attempt_id": 7}, run_at=later)
    db.session.commit()
    assert job is not None
    assert reload(job.id).scheduled_at == later


def test_enqueue_with_the_dedupe_key_of_a_waiting_job_adds_nothing(app: Flask, ctx: None) -> None:
    first = enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="ags:1:finished")
    second = enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="ags:1:finished")
    other = enqueue("ags.publish_status", {"attempt_id": 2}, dedupe_key="ags:2:finished")
    db.session.commit()

    assert first is not None and second is None and other is not None
    assert committed_jobs(app) == [
        ("ags.publish_status", "ags:1:finished"),
        ("ags.publish_status", "ags:2:finished"),
    ]


def test_enqueue_dedupes_against_a_job_committed_earlier(ctx: None) -> None:
    enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="k")
    db.session.commit()
    assert enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="k") is None


@pytest.mark.parametrize("status", ["doing", "succeeded", "failed", "cancelled"])
def test_enqueue_after_the_keyed_job_left_the_queue_adds_a_new_job(
    app: Flask, ctx: None, status: str
) -> None:
    # A running job may have read the state before this change: skipping would lose it.
    first = enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="k")
    assert first is not None
    first.status = status
    db.session.commit()

    again = enqueue("ags.publish_status", {"attempt_id": 1}, dedupe_key="k")
    db.session.commit()

    assert again is not None and again.id != first.id
    assert len(committed_jobs(app)) == 2


def test_enqueue_without_kind_is_refused(ctx: None) -> None:
    with pytest.raises(ValueError, match="kind"):
        enqueue("", {})


def test_revive_job_puts_a_dead_job_back_due_now_with_attempts_reset(ctx: None) -> None:
    job = enqueue("ags.publish_status", {"attempt_id": 1})
    assert job is not None
    job.status, job.attempts, job.last_error = "failed", 8, "AgsUnavailableError: 503"
    db.session.commit()

    now = utcnow()
    revive_job(job, now=now)
    db.session.commit()

    stored = reload(job.id)
    assert (stored.status, stored.attempts, stored.scheduled_at) == ("todo", 0, now)
    assert stored.last_error == "AgsUnavailableError: 503"  # kept as history


@pytest.mark.parametrize("status", ["todo", "doing", "succeeded", "cancelled"])
def test_revive_job_refuses_a_job_that_is_not_dead(ctx: None, status: str) -> None:
    job = enqueue("ags.publish_status", {"attempt_id": 1})
    assert job is not None
    job.status = status
    with pytest.raises(ValueError, match="not dead"):
        revive_job(job)


def test_revive_dead_jobs_revives_only_the_dead(ctx: None) -> None:
    statuses = ["failed", "succeeded", "failed", "todo"]
    for n, status in enumerate(statuses):
        job = enqueue("t.k", {"n": n})
        assert job is not None
        job.status, job.attempts = status, 3
    db.session.commit()

    assert revive_dead_jobs() == 2
    db.session.commit()

    db.session.expire_all()
    assert [(j.payload["n"], j.status, j.attempts) for j in find_jobs()] == [
        (3, "todo", 3),
        (2, "todo", 0),
        (1, "succeeded", 3),
        (0, "todo", 0),
    ]
    assert [j.payload["n"] for j in find_jobs(status=JobStatus.TODO, limit=2)] == [3, 2]
