from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lti_proctor.exam_settings import (
    ExamSettings,
    Owner,
    SettingsErrors,
    create_settings,
    get_settings_for,
    parse_settings_form,
    update_settings,
)
from lti_proctor.extensions import db
from tests.factories import make_platform

PROFILES = ("standard", "high_stakes")
GOOD = {
    "title": "Final exam",
    "exam_url": "https://moodle.example.edu/mod/quiz/view.php?id=7",
    "access_code": "PROC-2468",
    "profile": "standard",
    "max_attempts": "2",
    "opens_at": "2030-05-01T09:00",
    "closes_at": "2030-05-01T11:00Z",
}


def test_form_values_are_read_as_an_instructor_typed_them():
    values = parse_settings_form(GOOD, profiles=PROFILES)
    assert values.title == "Final exam"
    assert values.access_code == "PROC-2468"
    assert values.max_attempts == 2
    assert values.opens_at == datetime(2030, 5, 1, 9, tzinfo=UTC)
    assert values.closes_at == datetime(2030, 5, 1, 11, tzinfo=UTC)
    assert values.review_threshold is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "x" * 256),
        ("exam_url", "javascript:alert(1)"),
        ("exam_url", "ftp://files.example.edu/exam"),
        ("profile", "no_such_profile"),
        ("max_attempts", "0"),
        ("max_attempts", "many"),
        ("opens_at", "next tuesday"),
        ("closes_at", "2030-05-01T08:00"),
        ("review_threshold", "101"),
    ],
)
def test_each_bad_field_is_named_with_a_sentence(field, value):
    with pytest.raises(SettingsErrors) as caught:
        parse_settings_form({**GOOD, field: value}, profiles=PROFILES)
    assert list(caught.value.fields) == [field]
    assert caught.value.fields[field].endswith(".")


def test_an_exam_is_found_only_from_the_course_it_was_made_in(app):
    with app.app_context():
        platform = make_platform()
        owner = Owner(platform.id, "1", "course-2")
        row = create_settings(owner, parse_settings_form(GOOD, profiles=PROFILES), created_by="4")
        db.session.commit()
        assert row.ref.startswith("ex_") and len(row.ref) >= 24
        assert get_settings_for(owner, row.ref) is not None
        for other in (
            Owner(platform.id, "1", "course-3"),
            Owner(platform.id, "2", "course-2"),
            Owner(platform.id + 1, "1", "course-2"),
        ):
            assert get_settings_for(other, row.ref) is None
        assert get_settings_for(owner, "ex_guessed") is None


def test_settings_change_for_the_next_attempts(app):
    with app.app_context():
        owner = Owner(make_platform().id, "1", "c")
        row = create_settings(owner, parse_settings_form(GOOD, profiles=PROFILES), created_by=None)
        update_settings(row, parse_settings_form({**GOOD, "max_attempts": "3"}, profiles=PROFILES))
        db.session.commit()
        assert db.session.get(ExamSettings, row.id).max_attempts == 3
