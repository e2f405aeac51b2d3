from __future__ import annotations

import pytest

from lti_proctor.attempts.queries import (
    find_attempts_for_exam,
    get_attempt_detail,
    sort_timeline,
)
from lti_proctor.extensions import db
from lti_proctor.proctoring.profiles import get_profiles
from tests.factories import make_platform
from tests.factories_attempts import PROCTOR_CONFIG, make_attempt


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


def test_timeline_is_sorted_by_time_and_entries_without_time_go_last():
    entries = [
        {"at": None, "offset_sec": 5, "action_type": "c"},
        {"at": "2026-03-02T08:40:51Z", "action_type": "b"},
        {"at": "2026-03-02T09:14:03+01:00", "action_type": "a"},  # 08:14:03 UTC
        "not an entry",
    ]
    assert [e["action_type"] for e in sort_timeline(entries)] == ["a", "b", "c"]


def test_queries_never_cross_exams(app):
    with app.app_context():
        profile = get_profiles(app)["standard"]
        platform = make_platform()
        mine = make_attempt(platform, profile, state="started")
        theirs = make_attempt(
            platform, profile, resource_link_id="99", context_id="9", user_sub="18", user_name="X"
        )
        db.session.commit()
        assert [a.id for a in find_attempts_for_exam(mine.exam_id)] == [mine.id]
        assert get_attempt_detail(mine.exam_id, theirs.id) is None
        assert get_attempt_detail(theirs.exam_id, theirs.id).overview.id == theirs.id
        detail = get_attempt_detail(mine.exam_id, mine.id)
        assert detail.overview.state == "started" and detail.fetched_at is None
        assert detail.overview.student_name == "Aigerim Sadykova"
        assert detail.violations == [] and detail.timeline == []
