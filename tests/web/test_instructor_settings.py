from __future__ import annotations

import html
import re

import pytest
import responses
from sqlalchemy import func, select

from lti_proctor.attempts.review import AttemptReview
from lti_proctor.exam_settings import ExamSettings
from lti_proctor.extensions import db
from lti_proctor.jobs.worker import run_jobs
from lti_proctor.lti.nrps import CT_MEMBERSHIPS, SCOPE
from lti_proctor.results import reports as reports_job
from tests.exam_links import make_exam
from tests.factories_attempts import ACCESS_CODE, EXAM_URL
from tests.results.world import RESULTS_CONFIG, Clock, ResultsWorld

NEW_URL = "https://moodle.example.edu/mod/quiz/view.php?id=77"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
TEACHER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


@pytest.fixture
def app_config(app_config):
    app_config.update(RESULTS_CONFIG)
    return app_config


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(reports_job, "utcnow", clock)
    return clock


@pytest.fixture(params=["moodle", "canvas"])
def world(request, app, client, http):
    return ResultsWorld(app, client, http, family=request.param)


@pytest.fixture
def moodle(app, client, http):
    return ResultsWorld(app, client, http)


def link(resp, endpoint_suffix):
    found = [
        html.unescape(h) for h in re.findall(r'(?:href|action)="(/instructor/[^"]+)"', resp.text)
    ]
    return next(h for h in found if h.split("?")[0].endswith(endpoint_suffix))


def content_after_start(world, attempt):
    """What the exam page's API reveals once the service says the attempt started."""
    world.webhook(attempt, "start")
    resp = world.launch()
    token = re.search(r'data-api-token="([^"]+)"', resp.text).group(1)
    headers = {"Authorization": f"Bearer {html.unescape(token)}"}
    return world.client.get("/exam/api/attempt/content", headers=headers).json


# -- the Settings tab ----------------------------------------------------------------------------


def test_settings_tab_changes_apply_to_the_next_attempt(app, world):
    ref = make_exam(world.launcher, exam_url=EXAM_URL, access_code=ACCESS_CODE, max_attempts=2)
    page = world.launch(role="instructor", custom={"exam": ref})
    settings = world.client.get(link(page, "/settings"))
    assert settings.status_code == 200
    field = re.search(r'<input id="access_code"[^>]*>', settings.text).group(0)
    assert 'type="password"' in field  # masked, with a Show button
    assert "data-reveal" in settings.text
    form = {
        "title": "Midterm (moved)",
        "exam_url": NEW_URL,
        "access_code": "NEW-CODE-1",
        "profile": "standard",
        "max_attempts": "2",
    }
    saved = world.client.post(link(settings, "/settings"), data=form)
    assert saved.status_code == 303
    with app.app_context():
        row = db.session.scalars(select(ExamSettings)).one()
        assert (row.title, row.exam_url) == ("Midterm (moved)", NEW_URL)
    attempt = world.student_attempt(custom={"exam": ref})
    content = content_after_start(world, attempt)
    assert (content["exam_url"], content["access_code"]) == (NEW_URL, "NEW-CODE-1")


def test_settings_tab_bad_input_changes_nothing(app, moodle):
    ref = make_exam(moodle.launcher, exam_url=EXAM_URL, access_code=ACCESS_CODE)
    page = moodle.launch(role="instructor", custom={"exam": ref})
    settings = moodle.client.get(link(page, "/settings"))
    bad = {"title": "x", "exam_url": "ftp://nope", "profile": "standard", "max_attempts": "1"}
    resp = moodle.client.post(link(settings, "/settings"), data=bad)
    assert resp.status_code == 400
    assert 'id="exam_url-error"' in resp.text
    with app.app_context():
        assert db.session.scalars(select(ExamSettings)).one().exam_url == EXAM_URL


# -- legacy links with a custom access_code ------------------------------------------------------


def test_legacy_code_is_never_used_until_moved_into_the_tool(app, world):
    legacy = {"exam_url": EXAM_URL, "access_code": ACCESS_CODE, "max_attempts": "2"}
    refused = world.launch(custom=legacy)
    assert refused.status_code == 403
    assert b"launch.access_code_exposed" in refused.data
    assert b"tell your instructor" in refused.data
    assert ACCESS_CODE.encode() not in refused.data
    page = world.launch(role="instructor", custom=legacy)
    assert "Students can read this exam" in page.text
    moved = world.client.post(link(page, "/settings/move-code"))
    assert moved.status_code == 303
    after = world.client.get(moved.headers["Location"])
    assert "Students can read this exam" not in after.text
    attempt = world.student_attempt(custom=legacy)
    assert content_after_start(world, attempt)["access_code"] == ACCESS_CODE


def test_move_without_a_noted_code_is_refused(app, moodle):
    page = moodle.launch(role="instructor")
    action = link(page, "/settings").replace("/settings", "/settings/move-code")
    resp = moodle.client.post(action)
    assert resp.status_code == 400
    assert b"instructor.no_legacy_code" in resp.data


# -- the review decides the gradebook ------------------------------------------------------------


def flagged(world, clock, risk=87):
    attempt = world.student_attempt()
    world.webhook(attempt, "start")
    world.webhook(attempt, "finish")
    world.publish_report(attempt, overall_risk_score=risk)
    run_jobs(world.app, now=clock)
    return attempt


def review(world, attempt, decision, note=""):
    page = world.launch(role="instructor")
    detail = world.client.get(link(page, f"/attempts/{attempt.id}"))
    return world.client.post(
        link(detail, f"/attempts/{attempt.id}/review"), data={"decision": decision, "note": note}
    )


def test_review_moves_the_gradebook_from_pending_manual_to_fully_graded(app, world, clock):
    attempt = flagged(world, clock)
    score = world.gradebook()
    assert (score["gradingProgress"], score["comment"]) == (
        "PendingManual",
        "Proctoring under review",
    )
    assert review(world, attempt, "no_concern", "looked fine").status_code == 303
    clock.advance(5)
    run_jobs(app, now=clock)
    score = world.gradebook()
    assert (score["gradingProgress"], score["comment"]) == ("FullyGraded", "Proctoring reviewed")
    assert score.get("scoreGiven") is None
    posts = len(world.history())
    run_jobs(app, now=clock)  # nothing more to send
    assert len(world.history()) == posts
    review(world, attempt, "concern_confirmed")
    run_jobs(app, now=clock)
    assert len(world.history()) == posts + 1  # once per decision
    with app.app_context():
        trail = db.session.scalars(select(AttemptReview).order_by(AttemptReview.id)).all()
        assert [r.decision for r in trail] == ["no_concern", "concern_confirmed"]
        assert trail[0].note == "looked fine" and trail[0].reviewer_sub


def test_bad_review_stores_nothing(app, moodle, clock):
    attempt = flagged(moodle, clock)
    resp = review(moodle, attempt, "guilty")
    assert resp.status_code == 400
    assert b"instructor.review_invalid" in resp.data
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AttemptReview)) == 0


# -- the roster ----------------------------------------------------------------------------------


def nrps_url(world):
    if world.family == "canvas":
        return "https://school.instructure.com/api/lti/courses/1/names_and_roles"
    return "https://moodle.example.edu/mod/lti/services.php/CourseSection/2/bindings/1/memberships"


def serve_roster(world, http, members):
    """Two pages joined by Link rel="next", answered only with a token holding the NRPS scope."""
    world.lms.book.auth.extra_scopes = frozenset({SCOPE})  # this LMS offers the tool NRPS
    first, second = nrps_url(world), nrps_url(world) + "?page=2"
    calls = []

    def answer(request):
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        grant = world.lms.tokens.get(token)
        if grant is None or SCOPE not in grant.scopes:
            return 401, {}, '{"error": "invalid_token"}'
        calls.append(request.url)
        page2 = request.url.endswith("page=2")
        body = {"id": first, "members": members[1:] if page2 else members[:1]}
        headers = {} if page2 else {"Link": f'<{second}>; rel="next"'}
        return 200, {**headers, "Content-Type": CT_MEMBERSHIPS}, __import__("json").dumps(body)

    http.add_callback(responses.GET, first, callback=answer)
    http.add_callback(responses.GET, second, callback=answer)
    return calls


def test_roster_lists_every_learner_with_not_started(app, world, http, clock):
    flagged(world, clock, risk=10)
    members = [
        {"user_id": world.default_sub, "name": "Ada Student", "roles": [LEARNER]},
        {"user_id": "never-came", "name": "Bo Absent", "roles": [LEARNER]},
        {"user_id": "t1", "name": "Terry Teacher", "roles": [TEACHER]},
    ]
    calls = serve_roster(world, http, members)
    nrps = {"context_memberships_url": nrps_url(world), "service_versions": ["2.0"]}
    page = world.launch(role="instructor", nrps=nrps)
    rows = dict(re.findall(r'<tr data-roster-state="([a-z_]+)">\s*<td[^>]*>([^<]+)', page.text))
    assert rows == {"reported": "Ada Student", "not_started": "Bo Absent"}
    assert "Not started" in page.text and "Terry Teacher" not in page.text
    assert len(calls) == 2
    world.client.get(link(page, "/attempts"))
    assert len(calls) == 2  # cached briefly


def test_no_nrps_claim_says_the_roster_is_not_available(app, moodle, clock):
    page = moodle.launch(role="instructor")
    assert "The roster is not available from this LMS" in page.text
