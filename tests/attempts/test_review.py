from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lti_proctor.attempts.review import (
    Reviewer,
    ReviewError,
    find_reviews,
    get_current_review,
    record_review,
)
from lti_proctor.extensions import db
from lti_proctor.proctoring.profiles import get_profiles
from tests.factories import make_platform
from tests.factories_attempts import PROCTOR_CONFIG, make_attempt

TERRY = Reviewer(sub="4", name="Terry Teacher")


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


def test_every_decision_is_kept_and_the_latest_counts(app):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"], state="finished")
        attempt.state = "reported"  # the report job's move, not under test here
        first = datetime(2030, 5, 1, 12, tzinfo=UTC)
        record_review(attempt, "concern_confirmed", note="phone seen", reviewer=TERRY, now=first)
        later = first.replace(hour=13)
        record_review(attempt, "dismissed", note=" ", reviewer=TERRY, now=later)
        db.session.commit()
        assert get_current_review(attempt.id).decision == "dismissed"
        trail = find_reviews(attempt.id)
        assert [(r.decision, r.note, r.reviewer_name) for r in trail] == [
            ("concern_confirmed", "phone seen", "Terry Teacher"),
            ("dismissed", None, "Terry Teacher"),
        ]


@pytest.mark.parametrize(("state", "decision"), [("finished", "no_concern"), ("reported", "ok")])
def test_review_refuses_an_unreported_attempt_or_an_unknown_decision(app, state, decision):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"], state="finished")
        attempt.state = state
        with pytest.raises(ReviewError):
            record_review(attempt, decision, note=None, reviewer=TERRY)
        assert get_current_review(attempt.id) is None
