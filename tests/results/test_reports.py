from __future__ import annotations

from datetime import timedelta

import pytest

from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.reports import get_report
from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus
from lti_proctor.jobs.worker import run_jobs
from lti_proctor.results import reports as reports_job
from tests.factories_attempts import PROCTOR_CONFIG
from tests.results.world import RESULTS_CONFIG, Clock, ResultsWorld


@pytest.fixture
def app_config(app_config):
    app_config.update(RESULTS_CONFIG)
    return app_config


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(reports_job, "utcnow", clock)
    return clock


@pytest.fixture
def world(app, client, http):
    return ResultsWorld(app, client, http)


def drain(app, clock, seconds=0):
    clock.advance(seconds)
    return run_jobs(app, now=clock)


def finished(world, **changes):
    attempt = world.student_attempt()
    world.webhook(attempt, "start", **changes)
    world.webhook(attempt, "finish", **changes)
    return attempt


def fetch_jobs(world, status=None):
    return [job for job in world.jobs(status) if job.kind == "report.fetch"]


def waiting_poll(world):
    [job] = fetch_jobs(world, JobStatus.TODO)
    return job


def stored(app, attempt):
    with app.app_context():
        row = get_report(attempt.id)
        state = db.session.get(Attempt, attempt.id).state
        if row is not None:
            db.session.expunge(row)
        return state, row


def test_report_not_ready_then_ready_is_stored_and_posted(app, world, clock):
    attempt = finished(world)
    drain(app, clock)
    assert stored(app, attempt) == ("finished", None)
    poll = waiting_poll(world)
    assert poll.payload["poll"] == 2
    assert poll.scheduled_at == clock.now + timedelta(seconds=30)
    assert world.gradebook()["gradingProgress"] == "Pending"

    world.publish_report(attempt)
    drain(app, clock, seconds=30)
    state, row = stored(app, attempt)
    assert state == "reported"
    assert (row.risk_score, row.risk_source, row.risk_level) == (28, "overall_risk_score", "low")
    assert row.violation_count == 6
    assert [v["type"] for v in row.violations] == ["noise_detect", "head_rotated", "focus_down"]
    assert [t["action_type"] for t in row.timeline] == ["head_rotated", "focus_down"]  # by time
    assert row.recommendations == ["Review minute 13-15 of the screen recording."]
    assert row.summary.startswith("Short head turns")
    assert row.raw["timeline"][1]["screenshot"].startswith("https://")
    assert row.needs_review is False
    assert row.fetched_at == clock.now
    score = world.gradebook()
    assert (score["gradingProgress"], score.get("scoreGiven")) == ("FullyGraded", None)
    assert world.reports.requests == [str(world.service_id(attempt))] * 2
    assert not world.jobs(JobStatus.FAILED) and not world.jobs(JobStatus.TODO)


def test_not_ready_polls_with_growing_delays_without_spending_retries(app, world, clock):
    finished(world)
    drain(app, clock)
    delays = []
    for _ in range(9):
        poll = waiting_poll(world)
        delays.append((poll.scheduled_at - clock.now).total_seconds())
        clock.now = poll.scheduled_at
        assert run_jobs(app, now=clock) == 1
    assert delays == [30, 60, 120, 300, 600, 900, 1800, 1800, 1800]
    assert all(job.attempts == 0 and job.last_error is None for job in fetch_jobs(world))


def test_report_never_ready_gives_up_after_24_hours_with_a_clear_error(app, world, clock, runner):
    attempt = finished(world)
    first_poll = clock.now
    drain(app, clock)
    while (waiting := fetch_jobs(world, JobStatus.TODO)) != []:
        clock.now = waiting[0].scheduled_at
        run_jobs(app, now=clock)
    [dead] = fetch_jobs(world, JobStatus.FAILED)
    assert clock.now - first_poll == timedelta(hours=24)  # the last look is at exactly 24 h
    assert "still not ready after" in dead.last_error
    assert "24.0 h" in dead.last_error
    assert str(world.service_id(attempt)) in dead.last_error
    assert len(world.reports.requests) == dead.payload["poll"] < 60
    assert stored(app, attempt) == ("finished", None)
    listed = runner.invoke(args=["jobs", "list", "--dead"])
    assert "still not ready after" in listed.output


def test_report_at_or_above_threshold_is_flagged_for_review(app, world, clock):
    attempt = finished(world)
    world.publish_report(attempt, overall_risk_score=64)
    drain(app, clock)
    _, row = stored(app, attempt)
    assert row.needs_review is True
    assert world.gradebook()["gradingProgress"] == "PendingManual"


def test_report_without_overall_risk_uses_100_minus_credibility(app, world, clock):
    attempt = finished(world)
    world.publish_report(attempt, overall_risk_score=None, credibility=35)
    drain(app, clock)
    _, row = stored(app, attempt)
    assert (row.risk_score, row.risk_source) == (65, "credibility")
    assert row.needs_review is True


def test_service_outage_is_retried_with_backoff_then_the_report_arrives(app, world, clock):
    attempt = finished(world)
    world.publish_report(attempt)
    world.reports.fail_next(503)
    drain(app, clock)
    [job] = fetch_jobs(world, JobStatus.TODO)
    assert job.attempts == 1 and "503" in job.last_error
    drain(app, clock, seconds=120)
    assert stored(app, attempt)[0] == "reported"


def test_rejected_report_request_is_dead_without_leaking_the_key(app, world, clock, runner):
    finished(world)
    world.reports.api_key = "another-key"  # the service no longer accepts ours
    drain(app, clock)
    [dead] = fetch_jobs(world, JobStatus.FAILED)
    assert "401" in dead.last_error
    output = runner.invoke(args=["jobs", "list", "--dead"]).output
    assert PROCTOR_CONFIG["TRUSTEXAM_API_KEY"] not in output + dead.last_error


def test_finish_without_service_attempt_id_is_dead_with_a_reason(app, world, clock):
    attempt = finished(world, attempt={"id": None})
    drain(app, clock)
    [dead] = fetch_jobs(world, JobStatus.FAILED)
    assert "no service attempt id" in dead.last_error
    assert stored(app, attempt) == ("finished", None)
    assert world.reports.requests == []


def test_repeated_fetch_of_a_reported_attempt_changes_nothing(app, world, clock):
    attempt = finished(world)
    world.publish_report(attempt)
    drain(app, clock)
    with app.app_context():
        reports_job.fetch_report({"attempt_id": attempt.id})
        db.session.commit()
    assert len(world.reports.requests) == 1
    assert len([j for j in world.jobs() if j.payload.get("state") == "reported"]) == 1


def test_fetch_for_a_deleted_attempt_is_cancelled(app, world, clock):
    attempt = finished(world)
    with app.app_context():
        db.session.delete(db.session.get(Attempt, attempt.id))
        db.session.commit()
    drain(app, clock)
    assert {j.status for j in fetch_jobs(world)} == {JobStatus.CANCELLED.value}
