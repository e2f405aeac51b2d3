from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lti_proctor.attempts.reports import as_attempt_report, get_report, record_report
from lti_proctor.attempts.states import AttemptStateError
from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.proctoring.messages import parse_report
from lti_proctor.proctoring.profiles import get_profiles
from tests.factories import make_platform
from tests.factories_attempts import NOW, PROCTOR_CONFIG, make_attempt
from tests.fakes.reports import EXAMPLE_REPORT

LATER = NOW + timedelta(hours=2)


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield get_profiles(app)["standard"]


def queued_states(attempt_id):
    payloads = db.session.scalars(
        select(OutboxJob.payload).where(OutboxJob.kind == "ags.publish_status")
    )
    return [p["state"] for p in payloads if p["attempt_id"] == attempt_id]


def test_recording_a_report_stores_it_moves_to_reported_and_queues_the_final_status(ctx):
    attempt = make_attempt(make_platform(), ctx, state="finished")
    assert record_report(attempt, parse_report(EXAMPLE_REPORT), ctx, now=LATER) is True
    row = get_report(attempt.id)
    assert (attempt.state, attempt.reported_at) == ("reported", LATER)
    assert (row.risk_score, row.violation_count, row.needs_review) == (28, 6, False)
    assert queued_states(attempt.id) == ["started", "finished", "reported"]


def test_stored_report_reads_back_as_the_same_report(ctx):
    attempt = make_attempt(make_platform(), ctx, state="finished")
    parsed = parse_report(EXAMPLE_REPORT)
    record_report(attempt, parsed, ctx, now=LATER)
    db.session.commit()
    db.session.expire_all()
    assert as_attempt_report(get_report(attempt.id)) == parsed


def test_recording_again_updates_the_report_and_queues_nothing_more(ctx):
    attempt = make_attempt(make_platform(), ctx, state="finished")
    record_report(attempt, parse_report(EXAMPLE_REPORT), ctx, now=LATER)
    again = parse_report({**EXAMPLE_REPORT, "overall_risk_score": 90})
    assert record_report(attempt, again, ctx, now=LATER) is False
    assert get_report(attempt.id).needs_review is True
    assert queued_states(attempt.id).count("reported") == 1


@pytest.mark.parametrize("state", [None, "started"])
def test_report_for_an_unfinished_attempt_is_refused(ctx, state):
    attempt = make_attempt(make_platform(), ctx, state=state)
    with pytest.raises(AttemptStateError):
        record_report(attempt, parse_report(EXAMPLE_REPORT), ctx, now=LATER)
