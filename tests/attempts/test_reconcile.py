from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.queries import find_attempts_for_exam
from lti_proctor.attempts.reports import get_report
from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.timeutil import utcnow
from tests.factories import make_platform
from tests.factories_attempts import PROCTOR_CONFIG, deliver_webhook, make_attempt
from tests.fakes.reports import REPORT_BASE, FakeReports


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG, TRUSTEXAM_REPORT_BASE=REPORT_BASE)
    return app_config


@pytest.fixture
def reports(http):
    return FakeReports(api_key=PROCTOR_CONFIG["TRUSTEXAM_API_KEY"]).install(http)


def given_attempt(app, client, *events, state=None):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"], state=state)
        db.session.commit()
        db.session.refresh(attempt)
        db.session.expunge(attempt)
    for event in events:
        assert deliver_webhook(client, attempt, event).status_code == 200
    return attempt


def age(app, attempt_id, *, minutes, **values):
    with app.app_context():
        db.session.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id)
            .values(state_changed_at=utcnow() - timedelta(minutes=minutes), **values)
        )
        db.session.commit()


def stored(app, attempt_id):
    with app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        jobs = db.session.execute(
            select(OutboxJob.kind, OutboxJob.payload).order_by(OutboxJob.id)
        ).all()
        kinds = [(k, p.get("state")) for k, p in jobs if p.get("attempt_id") == attempt_id]
        return attempt.state, attempt.flag_reason, kinds


def reconcile(runner):
    result = runner.invoke(args=["attempts", "reconcile"])
    assert result.exit_code == 0, result.output
    return result.output


def test_started_attempt_whose_report_exists_is_finished_and_reported(app, client, runner, reports):
    attempt = given_attempt(app, client, "start")
    age(app, attempt.id, minutes=7 * 60)  # standard allows 6 h in started
    reports.publish(884211)
    out = reconcile(runner)
    assert f"{attempt.id}  started -> reported  reported" in out
    assert "1 attempt(s) settled, 0 flagged" in out
    state, flag, jobs = stored(app, attempt.id)
    assert (state, flag) == ("reported", None)
    assert ("ags.publish_status", "finished") in jobs and ("report.fetch", None) in jobs
    assert jobs[-1] == ("ags.publish_status", "reported")
    with app.app_context():
        assert get_report(attempt.id).risk_score == 28


def test_started_attempt_without_report_is_flagged_until_its_finish_arrives(
    app, client, runner, reports
):
    attempt = given_attempt(app, client, "start")
    age(app, attempt.id, minutes=7 * 60)
    out = reconcile(runner)
    assert "flagged: started 7.0 h ago; no finish webhook and no report at the service" in out
    assert "0 attempt(s) settled, 1 flagged" in out
    assert reports.requests == ["884211"]
    state, flag, _ = stored(app, attempt.id)
    assert state == "started" and flag.startswith("started 7.0 h ago")
    with app.app_context():
        exam_id = db.session.get(Attempt, attempt.id).exam_id
        (row,) = find_attempts_for_exam(exam_id)
        assert row.flag_reason == flag
    assert deliver_webhook(client, attempt, "finish").status_code == 200
    assert stored(app, attempt.id)[:2] == ("finished", None)


def test_attempt_the_service_never_named_is_flagged_without_asking(app, client, runner, reports):
    attempt = given_attempt(app, client, state="started")  # no webhook: no service attempt id
    age(app, attempt.id, minutes=7 * 60)
    out = reconcile(runner)
    assert "flagged: the service never sent its attempt id" in out
    assert reports.requests == []
    assert stored(app, attempt.id)[0] == "started"


def test_finished_attempt_whose_report_never_came_is_settled_by_the_report(
    app, client, runner, reports
):
    attempt = given_attempt(app, client, "start", "finish")
    age(app, attempt.id, minutes=27 * 60)
    reports.publish(884211)
    assert "finished -> reported  reported" in reconcile(runner)
    assert stored(app, attempt.id)[0] == "reported"


def test_attempts_within_their_profile_limits_are_left_alone(app, client, runner, reports):
    started = given_attempt(app, client, "start")
    age(app, started.id, minutes=5 * 60)
    out = reconcile(runner)
    assert "0 attempt(s) settled, 0 flagged" in out
    assert reports.requests == []
    assert stored(app, started.id)[:2] == ("started", None)


def test_stored_finish_whose_effect_was_lost_is_replayed(app, client, runner, reports):
    attempt = given_attempt(app, client, "start", "finish")
    age(app, attempt.id, minutes=1, state="started")  # what the lost race used to leave
    out = reconcile(runner)
    assert f"{attempt.id}  started -> finished  replayed" in out
    state, _, jobs = stored(app, attempt.id)
    assert state == "finished"
    assert jobs.count(("report.fetch", None)) == 1  # still waiting: the repair needs no second
    assert reports.requests == []


def test_reconcile_without_an_api_key_is_a_one_line_error(app, runner):
    app.config["TRUSTEXAM_API_KEY"] = None
    result = runner.invoke(args=["attempts", "reconcile"])
    assert result.exit_code == 1
    assert "TRUSTEXAM_API_KEY is not set" in result.output


def test_reconcile_job_settles_attempts_and_queues_its_next_run(app, client, reports):
    from lti_proctor.results.reconcile import KIND, reconcile_job

    attempt = given_attempt(app, client, "start")
    age(app, attempt.id, minutes=7 * 60)
    reports.publish(884211)
    with app.app_context():
        reconcile_job({})
        db.session.commit()
        (next_run,) = db.session.scalars(select(OutboxJob).where(OutboxJob.kind == KIND)).all()
        assert next_run.scheduled_at > utcnow() + timedelta(seconds=800)
    assert stored(app, attempt.id)[0] == "reported"
