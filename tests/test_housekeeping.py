"""Housekeeping: expired shared-store rows purged, succeeded jobs pruned after their keep age."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from lti_proctor.extensions import db
from lti_proctor.housekeeping import run_housekeeping
from lti_proctor.jobs.models import JobStatus, OutboxJob
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.jobs.worker import HOUSEKEEPING_KEY, Worker
from lti_proctor.store import StoreEntry, get_store
from lti_proctor.timeutil import utcnow


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config.pop("REDIS_URL", None)  # the database store, whose rows never expire by themselves
    app_config.pop("STORE_PREFIX", None)
    app_config["OUTBOX_KEEP_SUCCEEDED_DAYS"] = 7
    return app_config


def job_aged(status: JobStatus, days: float) -> int:
    job = enqueue("ags.publish_status", {"attempt_id": f"{status}-{days}"})
    assert job is not None
    job.status = status.value
    job.created_at = utcnow() - timedelta(days=days)
    db.session.commit()
    return int(job.id)


def store_keys() -> set[str]:
    return set(db.session.scalars(select(StoreEntry.key)))


def test_housekeeping_purges_expired_store_rows_and_keeps_live_ones(app: Flask) -> None:
    with app.app_context():
        store = get_store()
        for n in range(3):
            store.set(f"nonce-{n}", "used", ttl_s=0.001)
        store.set("live", "value", ttl_s=600)
        db.session.remove()
        assert len(store_keys()) == 4
        result = run_housekeeping()
        assert result.store_rows_purged == 3
        assert store_keys() == {"live"}
        assert store.get("live") == "value"


def test_housekeeping_prunes_only_succeeded_jobs_older_than_the_keep_age(app: Flask) -> None:
    with app.app_context():
        old_done = job_aged(JobStatus.SUCCEEDED, days=8)
        new_done = job_aged(JobStatus.SUCCEEDED, days=6)
        old_dead = job_aged(JobStatus.FAILED, days=30)
        old_todo = job_aged(JobStatus.TODO, days=30)
        assert run_housekeeping().jobs_pruned == 1
        db.session.expire_all()
        left = set(db.session.scalars(select(OutboxJob.id)))
        assert left == {new_done, old_dead, old_todo}
        assert old_done not in left


def test_the_worker_runs_the_apps_housekeeping(app: Flask) -> None:
    assert app.extensions[HOUSEKEEPING_KEY] is run_housekeeping
    with app.app_context():
        job_aged(JobStatus.SUCCEEDED, days=10)
        get_store().set("expired", "x", ttl_s=0.001)
    Worker(app, worker_id="w").housekeep_if_due()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxJob)) == 0
        assert store_keys() == set()
