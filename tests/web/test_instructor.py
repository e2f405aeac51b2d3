from __future__ import annotations

import csv
import html
import io
import re

import pytest

from lti_proctor.extensions import db
from lti_proctor.identity import Exam
from lti_proctor.jobs.worker import run_jobs
from lti_proctor.results import reports as reports_job
from lti_proctor.web import exam_page, instructor
from tests.factories_attempts import EXAM_URL
from tests.results.world import RESULTS_CONFIG, Clock, ResultsWorld

REPORT_URL = "https://app.proctor.example.test/report/884211"
COURSE_B = {"id": "77", "label": "HIST200", "title": "History 200"}
LINK_B = {"id": "55", "title": "History midterm"}


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


def reported_attempt(world, clock, sub=None, risk=28, **launch):
    attempt = world.student_attempt(sub, **launch)
    world.webhook(attempt, "start")
    world.webhook(attempt, "finish")
    world.publish_report(attempt, overall_risk_score=risk)
    run_jobs(world.app, now=clock)
    return attempt


def links(resp):
    return [html.unescape(h) for h in re.findall(r'href="(/instructor/[^"]+)"', resp.text)]


def list_url(resp):
    return next(link for link in links(resp) if link.endswith("/attempts.csv")).removesuffix(".csv")


def detail_url(resp, attempt_id):
    return next(link for link in links(resp) if link.endswith(f"/attempts/{attempt_id}"))


def row_of(resp, attempt_id):
    match = re.search(rf'<tr data-attempt="{attempt_id}">(.*?)</tr>', resp.text, re.S)
    assert match, f"no row for {attempt_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(match.group(1))).split())


# -- the list ------------------------------------------------------------------------------------


def test_instructor_launch_lists_attempts_with_their_results(world, clock):
    attempt = reported_attempt(world, clock)
    resp = world.launch(role="instructor")
    assert resp.status_code == 200
    row = row_of(resp, attempt.id)
    assert "Sam Student" in row and "student1@example.edu" in row
    assert "Report ready" in row
    assert "2026-03-02 08:00 UTC" in row and "2026-03-02 09:12 UTC" in row
    assert "28 AI risk score, low" in row
    assert " 6 " in f" {row} "
    assert "OK" in row and "Review" not in row
    assert f'<a href="{REPORT_URL}" target="_blank" rel="noopener noreferrer">' in resp.text
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"


def test_list_marks_attempts_for_review_and_shows_unfinished_ones(moodle, clock):
    flagged = reported_attempt(moodle, clock, risk=75)
    running = moodle.student_attempt("student-2", name="Lee Running", email=None)
    moodle.webhook(running, "start")
    resp = moodle.launch(role="instructor")
    assert "Review" in row_of(resp, flagged.id)
    assert "1 to review" in resp.text
    pending = row_of(resp, running.id)
    assert "Lee Running" in pending and "In progress" in pending
    assert "—" in pending  # no risk, no review flag before the report


def test_list_page_reached_by_its_link_shows_the_same_attempts(moodle, clock):
    attempt = reported_attempt(moodle, clock)
    launch = moodle.launch(role="instructor")
    detail = moodle.client.get(detail_url(launch, attempt.id))
    back = next(link for link in links(detail) if link.endswith("/attempts"))
    resp = moodle.client.get(back)
    assert resp.status_code == 200
    assert "Sam Student" in row_of(resp, attempt.id)
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_exam_without_attempts_says_so(moodle):
    resp = moodle.launch(role="instructor")
    assert resp.status_code == 200
    assert "No student has opened this exam yet" in resp.text


# -- the detail view -----------------------------------------------------------------------------


def test_detail_shows_violations_timeline_by_time_recommendations_and_summary(moodle, clock):
    attempt = reported_attempt(moodle, clock)
    resp = moodle.client.get(detail_url(moodle.launch(role="instructor"), attempt.id))
    assert resp.status_code == 200
    page = html.unescape(resp.text)
    for kind, count, severity in [("noise_detect", 3, "low"), ("head_rotated", 2, "medium")]:
        assert re.search(rf"<td>{kind}</td><td>{count}</td><td>{severity}</td>", page)
    timeline = page[page.index("<h2>Timeline</h2>") :]
    assert timeline.index("2026-03-02T08:14:03Z") < timeline.index("2026-03-02T08:40:51Z")
    assert "13:49" in timeline and "Head turned away for 4 s" in timeline
    assert "Review minute 13-15 of the screen recording." in page
    assert "Short head turns and background noise" in page
    assert f'href="{REPORT_URL}" target="_blank" rel="noopener noreferrer"' in resp.text
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_detail_before_the_report_says_it_is_not_in_yet(moodle):
    attempt = moodle.student_attempt()
    moodle.webhook(attempt, "start")
    resp = moodle.client.get(detail_url(moodle.launch(role="instructor"), attempt.id))
    assert resp.status_code == 200
    assert "The AI report for this attempt is not in yet" in resp.text


# -- the CSV export ------------------------------------------------------------------------------


def test_csv_export_has_one_line_per_attempt(world, clock):
    attempt = reported_attempt(world, clock)
    launch = world.launch(role="instructor")
    resp = world.client.get(list_url(launch) + ".csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert re.fullmatch(
        r'attachment; filename="proctoring-final-exam-proctored-\d{4}-\d{2}-\d{2}\.csv"',
        resp.headers["Content-Disposition"],
    )
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 1
    assert rows[0] == {
        "student": "Sam Student",
        "email": "student1@example.edu",
        "attempt": "1",
        "state": "reported",
        "started_at": "2026-03-02T08:00:14Z",
        "finished_at": "2026-03-02T09:12:40Z",
        "risk_score": "28",
        "risk_source": "overall_risk_score",
        "risk_level": "low",
        "violations": "6",
        "needs_review": "no",
        "report_url": REPORT_URL,
    }
    assert attempt.id  # the attempt the row stands for


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://evil.example")', "+1+1", "-2+3", "@SUM(A1)", "\tTab"]
)
def test_csv_cells_that_look_like_formulas_are_neutralised(moodle, clock, name):
    moodle.student_attempt(name=name, email="=cmd|' /C calc'!A0")
    resp = moodle.client.get(list_url(moodle.launch(role="instructor")) + ".csv")
    [row] = list(csv.DictReader(io.StringIO(resp.text)))
    assert row["student"] == "'" + name
    assert row["email"] == "'=cmd|' /C calc'!A0"


# -- who may see it ------------------------------------------------------------------------------


def test_learner_launch_gets_the_exam_and_never_the_results(moodle, clock):
    reported_attempt(moodle, clock)
    resp = moodle.launch(custom={"exam_url": EXAM_URL})  # one attempt allowed: it is used
    assert resp.status_code == 200
    page = resp.text
    assert "/instructor/" not in page
    assert REPORT_URL not in page and "report/884211" not in page
    assert "risk" not in page.lower() and "violation" not in page.lower()


def test_learner_exam_page_has_no_instructor_links(moodle):
    resp = moodle.launch()
    assert resp.status_code == 200
    assert links(resp) == []


@pytest.mark.parametrize(
    "path",
    [
        "/instructor/{token}/attempts",
        "/instructor/{token}/attempts.csv",
        "/instructor/{token}/attempts/{attempt}",
    ],
)
@pytest.mark.parametrize(
    "forge",
    ["garbage", "tampered", "other-purpose", "expired"],
)
def test_forged_or_expired_token_is_401(moodle, clock, app, path, forge):
    attempt = reported_attempt(moodle, clock)
    good = list_url(moodle.launch(role="instructor")).split("/")[2]
    if forge == "garbage":
        token = "not-a-token"
    elif forge == "tampered":
        token = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    elif forge == "other-purpose":  # a valid token of the learner's exam page
        with app.test_request_context():
            token = exam_page.sign("open", {"e": moodle.exam().id, "p": 1, "c": "2"})
    else:
        token = good
        app.config["PROCTOR_INSTRUCTOR_TOKEN_TTL_S"] = -1  # every token is now too old
    resp = moodle.client.get(path.format(token=token, attempt=attempt.id))
    assert resp.status_code == 401
    assert "Sam Student" not in resp.text and REPORT_URL not in resp.text


def course_b_attempt(moodle):
    return moodle.student_attempt(
        "student-b",
        name="Bea Other",
        email="bea@example.edu",
        context=COURSE_B,
        resource_link=LINK_B,
    )


def test_token_of_course_a_never_shows_course_b(moodle, clock):
    mine = reported_attempt(moodle, clock)
    theirs = course_b_attempt(moodle)
    launch_a = moodle.launch(role="instructor")
    assert mine.id in launch_a.text and theirs.id not in launch_a.text
    assert "Bea Other" not in launch_a.text
    stolen = list_url(launch_a) + f"/{theirs.id}"
    resp = moodle.client.get(stolen)
    assert resp.status_code == 404
    assert "Bea Other" not in resp.text
    csv_a = moodle.client.get(list_url(launch_a) + ".csv").text
    assert "Bea Other" not in csv_a and "Sam Student" in csv_a


def test_course_b_instructor_sees_only_course_b(moodle, clock):
    reported_attempt(moodle, clock)
    theirs = course_b_attempt(moodle)
    resp = moodle.launch(role="instructor", context=COURSE_B, resource_link=LINK_B)
    assert "Bea Other" in row_of(resp, theirs.id)
    assert "Sam Student" not in resp.text


def test_token_not_bound_to_the_exams_course_is_403(moodle, clock, app):
    reported_attempt(moodle, clock)
    with app.app_context():
        exam = db.session.get(Exam, moodle.exam().id)
        db.session.expunge(exam)
    exam.context_id = COURSE_B["id"]  # a signed token naming the exam with another course
    with app.app_context():
        token = instructor.instructor_token(exam, ())
    resp = moodle.client.get(f"/instructor/{token}/attempts")
    assert resp.status_code == 403
    assert "Sam Student" not in resp.text
