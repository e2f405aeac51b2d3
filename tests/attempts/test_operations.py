from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from lti_proctor.attempts import events, operations
from lti_proctor.attempts.models import Attempt
from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.proctoring.client import from_config
from lti_proctor.proctoring.errors import (
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
)
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.proctoring.types import ProviderEvent
from lti_proctor.proctoring.webhooks import parse_event
from tests.factories import make_platform
from tests.factories_attempts import (
    ACCESS_CODE,
    EXAM_URL,
    LINKS,
    NOW,
    PROCTOR_CONFIG,
    FakeClient,
    fake_service,
    make_attempt,
    make_exam_and_learner,
)


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


def _begin(app, exam, learner, *, profile="standard", now=NOW, **kwargs):
    return operations.begin_start(
        exam=exam,
        learner=learner,
        profile=get_profiles(app)[profile],
        links=LINKS,
        now=now,
        exam_url=kwargs.pop("exam_url", EXAM_URL),
        access_code=kwargs.pop("access_code", ACCESS_CODE),
        **kwargs,
    )


def _start(app, exam, learner, *, now=NOW, **kwargs):
    """The launch's phases as web/exam.py runs them, committing between them."""
    pending = _begin(app, exam, learner, now=now, **kwargs)
    db.session.commit()
    if pending.session is None:
        return pending.outcome
    try:
        result = from_config(app.config).upsert_session(pending.session)
        attempt = operations.complete_start(pending, result, now=now)
    except ProviderError:
        operations.abandon_start(pending)
        db.session.commit()
        raise
    db.session.commit()
    return replace(pending.outcome, attempt=attempt)


def _count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _jobs():
    rows = db.session.scalars(select(OutboxJob).order_by(OutboxJob.id)).all()
    return [(job.kind, job.payload) for job in rows]


def test_first_launch_opens_attempt_with_the_service_token(app, http):
    service = fake_service(http)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        outcome = _start(app, exam, learner)
        db.session.commit()
        attempt = outcome.attempt
        assert outcome.status == "new"
        assert (attempt.number, attempt.state, attempt.token) == (1, "created", "sdk-token-1")
        assert attempt.report_url.startswith("https://app.proctor.example.test/")
        sent = service.bodies[0]
        assert sent["session_data"]["external_id"] == attempt.id
        assert sent["assignment"]["external_id"] == exam.external_id
        assert sent["student"]["external_id"] == learner.external_id
        assert sent["assignment"]["settings"]["webhook"]["headers"] == {
            "X-Tool-Webhook-Secret": attempt.webhook_secret
        }


def test_relaunch_before_finishing_reuses_attempt_and_refreshes_token(app, http):
    service = fake_service(http)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        first = _start(app, exam, learner).attempt
        db.session.commit()
        later = NOW + timedelta(minutes=20)
        again = _start(app, exam, learner, now=later)
        db.session.commit()
        assert again.status == "resumed"
        assert again.attempt.id == first.id
        assert again.attempt.token == "sdk-token-2"
        assert again.attempt.token_refreshed_at == later
        assert _count(Attempt) == 1
        # The upsert is repeated for the same attempt with the same secret (idempotent).
        assert [b["session_data"]["external_id"] for b in service.bodies] == [first.id] * 2
        hooks = [b["assignment"]["settings"]["webhook"]["query"]["sig"] for b in service.bodies]
        assert hooks == [first.webhook_secret] * 2


def test_two_launches_at_once_open_one_attempt(app, http):
    # The service answers slowly, so both launches are between their phases together.
    service = fake_service(http, delay_s=0.3)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        db.session.commit()
        exam_id, learner_id = exam.id, learner.id
    barrier = threading.Barrier(2)
    results, errors = [], []

    def launch():
        try:
            with app.app_context():
                exam = db.session.get(type(exam_ref), exam_id)
                learner = db.session.get(type(learner_ref), learner_id)
                barrier.wait(timeout=5)
                outcome = _start(app, exam, learner)
                db.session.commit()
                results.append((outcome.status, outcome.attempt.id))
                db.session.remove()
        except Exception as exc:  # surfaced below
            errors.append(exc)

    exam_ref, learner_ref = exam, learner
    threads = [threading.Thread(target=launch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(status for status, _ in results) == ["new", "resumed"]
    assert len({attempt_id for _, attempt_id in results}) == 1
    with app.app_context():
        assert _count(Attempt) == 1
    assert service.calls == 2


def test_after_finish_no_new_attempt_when_max_attempts_is_one(app, http):
    service = fake_service(http)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        first = _start(app, exam, learner).attempt
        operations.mark_finished(first, now=NOW)
        db.session.commit()
        outcome = _start(app, exam, learner)
        assert outcome.status == "finished"
        assert outcome.attempt.id == first.id
        assert (outcome.attempts_used, outcome.max_attempts) == (1, 1)
        assert _count(Attempt) == 1
        assert service.calls == 1  # no session for an attempt that cannot start


def test_after_finish_a_second_attempt_when_max_attempts_allows(app, http):
    fake_service(http)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        first = _start(app, exam, learner, max_attempts=2).attempt
        operations.mark_finished(first, now=NOW)
        second = _start(app, exam, learner, max_attempts=2)
        assert second.status == "new"
        assert second.attempt.number == 2
        assert second.attempt.id != first.id
        operations.mark_finished(second.attempt, now=NOW)
        assert _start(app, exam, learner, max_attempts=2).status == "finished"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 1), ("", 1), ("3", 3), (" 2 ", 2), ("0", 1), ("many", 1)]
)
def test_max_attempts_custom_parameter_is_read_safely(value, expected):
    assert operations.parse_max_attempts(value) == expected


@pytest.mark.parametrize(
    ("status", "error"), [(503, ProviderUnavailableError), (422, ProviderRejectedError)]
)
def test_service_failure_leaves_no_attempt_behind(app, http, status, error):
    fake_service(http, status=status)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        with pytest.raises(error):
            _start(app, exam, learner)
        db.session.commit()
        assert _count(Attempt) == 0


def test_start_works_once_the_service_recovers(app, http):
    service = fake_service(http, status=503)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        with pytest.raises(ProviderUnavailableError):
            _start(app, exam, learner)
        db.session.commit()
        service.status = 200
        outcome = _start(app, exam, learner)
        db.session.commit()
        assert (outcome.status, outcome.attempt.number) == ("new", 1)
        assert _count(Attempt) == 1


def test_failed_refresh_leaves_the_resumed_attempt_as_it_was(app, http):
    service = fake_service(http)
    with app.app_context():
        exam, learner = make_exam_and_learner(make_platform())
        first = _start(app, exam, learner).attempt
        before = (first.id, first.token, first.token_refreshed_at, first.exam_url)
        service.status = 503
        with pytest.raises(ProviderUnavailableError):
            _start(app, exam, learner, now=NOW + timedelta(minutes=5), exam_url=EXAM_URL + "&v=2")
        db.session.expire_all()
        attempt = db.session.scalars(select(Attempt)).one()
        assert (attempt.id, attempt.token, attempt.token_refreshed_at, attempt.exam_url) == before


def _two_tabs(app):
    """Tab A inserts a new attempt and commits; tab B then finds it, still without a token."""
    exam, learner = make_exam_and_learner(make_platform())
    tab_a = _begin(app, exam, learner)
    db.session.commit()
    tab_b = _begin(app, exam, learner)
    db.session.commit()
    assert (tab_a.outcome.status, tab_b.outcome.status) == ("new", "resumed")
    assert tab_b.session.attempt_id == tab_a.session.attempt_id
    return tab_a, tab_b


def test_failed_new_start_keeps_the_attempt_a_concurrent_tab_completed(app):
    with app.app_context():
        tab_a, tab_b = _two_tabs(app)
        result = FakeClient().upsert_session(tab_b.session)
        operations.complete_start(tab_b, result, now=NOW)
        db.session.commit()
        operations.abandon_start(tab_a)  # tab A's own upsert failed
        db.session.commit()
        assert db.session.scalars(select(Attempt.token)).all() == ["sdk-token-1"]


def test_tab_whose_attempt_was_removed_by_a_failed_start_gets_service_unavailable(app):
    with app.app_context():
        tab_a, tab_b = _two_tabs(app)
        operations.abandon_start(tab_a)  # tab A's upsert failed first
        db.session.commit()
        result = FakeClient().upsert_session(tab_b.session)
        with pytest.raises(ProviderUnavailableError):
            operations.complete_start(tab_b, result, now=NOW)
        operations.abandon_start(tab_b)  # resumed, not its own: changes nothing
        db.session.commit()
        assert _count(Attempt) == 0


def test_start_enqueues_gradebook_status_once(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        assert operations.mark_started(attempt, now=NOW) is True
        assert operations.mark_started(attempt, now=NOW) is False
        db.session.commit()
        assert _jobs() == [("ags.publish_status", {"attempt_id": attempt.id, "state": "started"})]
        assert attempt.started_at == NOW


def test_finish_enqueues_gradebook_status_and_report_fetch(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"], state="started")
        assert operations.mark_finished(attempt, now=NOW) is True
        assert operations.mark_finished(attempt, now=NOW) is False
        db.session.commit()
        assert _jobs() == [
            ("ags.publish_status", {"attempt_id": attempt.id, "state": "started"}),
            ("ags.publish_status", {"attempt_id": attempt.id, "state": "finished"}),
            ("report.fetch", {"attempt_id": attempt.id}),
        ]


def test_jobs_belong_to_the_state_change_transaction(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        db.session.commit()
        attempt_id = attempt.id
        operations.mark_started(attempt, now=NOW)
        db.session.rollback()
        assert _jobs() == []
        assert db.session.get(Attempt, attempt_id).state == "created"


def _event(kind, **fields):
    values = dict(
        attempt_ref=None,
        service_attempt_id="884211",
        status=None,
        started_at=None,
        finished_at=None,
        occurred_at=None,
        report_url=None,
    )
    values.update(fields)
    return ProviderEvent(kind=kind, **values)


def test_finish_event_before_start_is_accepted(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        report = "https://app.proctor.example.test/report/884211"
        assert events.apply_provider_event(attempt, _event("finish", report_url=report), now=NOW)
        assert (attempt.state, attempt.service_attempt_id) == ("finished", "884211")
        assert attempt.report_url == report
        assert [kind for kind, _ in _jobs()] == ["ags.publish_status", "report.fetch"]


def test_start_event_after_finish_changes_nothing(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"], state="finished")
        jobs_before = _jobs()
        assert events.apply_provider_event(attempt, _event("start"), now=NOW) is False
        assert attempt.state == "finished"
        assert _jobs() == jobs_before


def test_sdk_start_report_counts_only_for_sdk_profiles(app):
    with app.app_context():
        platform = make_platform()
        standard = make_attempt(platform, get_profiles(app)["standard"])
        with pytest.raises(operations.StartProofError):
            operations.record_sdk_started(standard, now=NOW)
        assert standard.state == "created"
        low = make_attempt(platform, get_profiles(app)["low_stakes"], resource_link_id="43")
        assert operations.record_sdk_started(low, now=NOW) is True
        assert low.state == "started"


def test_content_is_revealed_only_while_started(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        assert operations.revealed_content(attempt) is None
        operations.mark_started(attempt, now=NOW)
        assert operations.revealed_content(attempt) == {
            "exam_url": EXAM_URL,
            "access_code": ACCESS_CODE,
        }
        operations.mark_finished(attempt, now=NOW)
        assert operations.revealed_content(attempt) is None


def test_same_webhook_body_is_stored_once(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        args = _delivery(b'{"attempt_id": "x"}')
        assert events.record_webhook_event(attempt.id, now=NOW, **args) is True
        assert events.record_webhook_event(attempt.id, now=NOW, **args) is False
        args = _delivery(b'{"attempt_id": "x", "retry": 1}')
        assert events.record_webhook_event(attempt.id, now=NOW, **args) is True


def _delivery(raw, content_type="application/json", kind="start"):
    event = parse_event(kind, raw, content_type)
    return dict(event=event, raw_body=raw, content_type=content_type)
