from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import func, select

from lti_proctor.exam_settings import Owner, create_settings, parse_settings_form
from lti_proctor.extensions import db
from lti_proctor.identity import (
    Exam,
    Learner,
    assignment_external_id,
    group_external_id,
    link_exam_settings,
    student_external_id,
    sync_exam_from_launch,
    sync_learner_from_launch,
)
from tests.factories import make_platform
from tests.factories_attempts import NOW, make_launch

ISS = "https://moodle.example.edu"
ID_SHAPE = re.compile(r"^lti:[0-9a-f]{32}$")


def test_assignment_id_is_the_documented_hash_so_admins_can_reconcile():
    expected = "lti:" + hashlib.sha256(f"{ISS}|1|42".encode()).hexdigest()[:32]
    assert assignment_external_id(ISS, "1", "42") == expected


def test_student_and_group_ids_are_the_documented_hashes():
    assert student_external_id(ISS, "17") == (
        "lti:" + hashlib.sha256(f"{ISS}|17".encode()).hexdigest()[:32]
    )
    assert group_external_id(ISS, "2") == (
        "lti:" + hashlib.sha256(f"{ISS}|2".encode()).hexdigest()[:32]
    )


def test_ids_are_stable_across_calls():
    assert assignment_external_id(ISS, "1", "42") == assignment_external_id(ISS, "1", "42")
    assert student_external_id(ISS, "17") == student_external_id(ISS, "17")


@pytest.mark.parametrize(
    "other",
    [
        ("https://canvas.instructure.com", "1", "42"),  # another platform
        (ISS, "2", "42"),  # another deployment
        (ISS, "1", "43"),  # another link (course placement)
    ],
)
def test_assignment_ids_differ_across_platforms_deployments_and_links(other):
    assert assignment_external_id(ISS, "1", "42") != assignment_external_id(*other)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((ISS, "17"), ("https://canvas.instructure.com", "17")),
        ((ISS, "17"), (ISS, "18")),
    ],
)
def test_student_ids_differ_across_platforms_and_users(a, b):
    assert student_external_id(*a) != student_external_id(*b)


def test_group_ids_differ_across_courses():
    assert group_external_id(ISS, "2") != group_external_id(ISS, "3")


@pytest.mark.parametrize(
    "sub",
    ["17", "a.sadykova@example.edu", "3f1c0b2e-7d5a-4c55-9a0e-2b7c8d9e0f11", "x" * 1000],
)
def test_student_id_is_opaque_and_short_whatever_the_sub(sub):
    external = student_external_id(ISS, sub)
    assert ID_SHAPE.match(external)
    assert sub not in external
    assert len(external) <= 191


def test_relaunch_finds_the_same_exam_and_learner(app):
    with app.app_context():
        platform = make_platform()
        ctx = make_launch(platform)
        exam, learner = sync_exam_from_launch(ctx, now=NOW), sync_learner_from_launch(ctx, now=NOW)
        db.session.commit()
        again = make_launch(platform, resource_link_title="Midterm (renamed)")
        assert sync_exam_from_launch(again, now=NOW).id == exam.id
        assert sync_learner_from_launch(again, now=NOW).id == learner.id
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Exam)) == 1
        assert db.session.scalar(select(func.count()).select_from(Learner)) == 1
        assert exam.title == "Midterm (renamed)"


def test_exam_row_keeps_the_hashed_ids_and_gradebook_endpoints(app):
    with app.app_context():
        platform = make_platform()
        exam = sync_exam_from_launch(make_launch(platform), now=NOW)
        assert exam.external_id == assignment_external_id(ISS, "1", "42")
        assert exam.group_external_id == group_external_id(ISS, "2")
        assert exam.lineitem_url and exam.lineitem_url.endswith("/lineitems/7/lineitem?type_id=1")
        assert exam.ags_scopes == ["https://purl.imsglobal.org/spec/lti-ags/scope/score"]


def test_launch_without_ags_claim_keeps_the_known_line_item(app):
    with app.app_context():
        platform = make_platform()
        exam = sync_exam_from_launch(make_launch(platform), now=NOW)
        sync_exam_from_launch(make_launch(platform, ags=None), now=NOW)
        assert exam.lineitem_url is not None


def test_learner_email_follows_what_the_platform_shares_now(app):
    with app.app_context():
        platform = make_platform()
        learner = sync_learner_from_launch(make_launch(platform), now=NOW)
        assert learner.email == "a.sadykova@example.edu"
        sync_learner_from_launch(make_launch(platform, email=None), now=NOW)
        assert learner.email is None


def test_same_user_on_two_platforms_is_two_learners(app):
    with app.app_context():
        moodle = make_platform()
        canvas = make_platform(issuer="https://canvas.instructure.com", client_id="10000000000001")
        one = sync_learner_from_launch(make_launch(moodle), now=NOW)
        two = sync_learner_from_launch(make_launch(canvas), now=NOW)
        assert one.id != two.id
        assert one.external_id != two.external_id


def test_a_students_relaunch_reads_unchanged_rows_and_writes_what_changed(app):
    with app.app_context():
        platform = make_platform()
        first = make_launch(platform)
        exam = sync_exam_from_launch(first, now=NOW, copy_ok=True)
        learner = sync_learner_from_launch(first, now=NOW)
        db.session.commit()
        later = NOW.replace(year=NOW.year + 1)

        same_exam = sync_exam_from_launch(first, now=later, copy_ok=True)
        same_learner = sync_learner_from_launch(first, now=later)
        assert (same_exam.id, same_exam.title) == (exam.id, exam.title)
        assert (same_learner.id, same_learner.name) == (learner.id, learner.name)
        renamed = sync_learner_from_launch(make_launch(platform, user_name="Aigerim B."), now=later)
        db.session.commit()

        stored = db.session.get(Learner, learner.id)
        assert renamed.id == learner.id and stored.name == "Aigerim B."
        assert stored.updated_at == later  # written once, for the name
        assert db.session.get(Exam, exam.id).updated_at == NOW  # an unchanged exam: no write


def test_linking_settings_through_a_read_only_copy_stores_the_link(app):
    with app.app_context():
        platform = make_platform()
        ctx = make_launch(platform)
        sync_exam_from_launch(ctx, now=NOW)
        owner = Owner(platform.id, ctx.deployment_id, ctx.context_id or "")
        form = {"title": "Final", "exam_url": "", "access_code": "", "profile": "standard"}
        settings = create_settings(
            owner, parse_settings_form(form, profiles=("standard",)), created_by=None
        )
        db.session.commit()

        copy = sync_exam_from_launch(ctx, now=NOW, copy_ok=True)
        link_exam_settings(copy, settings.id, now=NOW)
        db.session.commit()

        assert copy.settings_id == settings.id
        assert db.session.get(Exam, copy.id).settings_id == settings.id
