from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests

from lti_proctor.extensions import db
from lti_proctor.identity import Exam
from lti_proctor.jobs.models import JobStatus
from lti_proctor.jobs.worker import Worker, run_jobs
from lti_proctor.results import reports as reports_job
from tests.factories_attempts import PROCTOR_CONFIG
from tests.results.world import RESULTS_CONFIG, Clock, ResultsWorld

STARTED_AT = "2026-03-02T08:00:14.000+00:00"
FINISHED_AT = "2026-03-02T09:12:40.000+00:00"
SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"


@pytest.fixture
def app_config(app_config):
    app_config.update(RESULTS_CONFIG)
    return app_config


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(reports_job, "utcnow", clock)  # the report job's clock is the worker's
    return clock


@pytest.fixture(params=["moodle", "canvas"])
def world(request, app, client, http):
    return ResultsWorld(app, client, http, family=request.param)


def drain(app, clock, seconds=0):
    clock.advance(seconds)
    return run_jobs(app, now=clock)


def finished_attempt(world, report=None):
    attempt = world.student_attempt()
    world.webhook(attempt, "start")
    world.webhook(attempt, "finish")
    if report is not None:
        world.publish_report(attempt, **report)
    return attempt


def no_score_given(score):
    # Moodle keeps no scoreGiven before FullyGraded; Canvas stores what it got (nothing).
    return score.get("scoreGiven") is None


# -- the happy path ------------------------------------------------------------------------------


def test_finish_webhook_puts_completed_pending_in_the_proctoring_column(app, world, clock):
    finished_attempt(world)
    drain(app, clock)
    score = world.gradebook()
    assert score["activityProgress"] == "Completed"
    assert score["gradingProgress"] == "Pending"
    assert score["userId"] == world.default_sub
    assert score["comment"] == "Proctoring complete"
    assert no_score_given(score)
    assert world.history() == [("Started", "Pending"), ("Completed", "Pending")]


def test_statuses_carry_the_attempts_state_times_not_the_job_run_time(app, world, clock):
    finished_attempt(world)
    drain(app, clock, seconds=7200)
    items = world.proctoring_items()
    stamps = [s["timestamp"] for s in world.lms.scores[(items[0]["id"], world.default_sub)]]
    assert stamps == [STARTED_AT, FINISHED_AT]


def test_proctoring_column_is_a_tagged_line_item_of_its_own(app, world, clock):
    finished_attempt(world)
    drain(app, clock)
    [item] = world.proctoring_items()
    link_id = world.launcher.fixture["claims"][
        "https://purl.imsglobal.org/spec/lti/claim/resource_link"
    ]["id"]
    assert item["label"] == "Proctoring: Final exam (proctored)"
    assert item["resourceLinkId"] == link_id
    assert item["scoreMaximum"] == 100
    exam = world.exam()
    assert exam.proctoring_lineitem_url == item["id"]
    assert exam.lineitem_url != item["id"]  # the assignment's own column is left alone
    assert not [key for key in world.lms.scores if key[0] == exam.lineitem_url]


@pytest.mark.parametrize(
    ("risk", "grading", "given", "comment"),
    [
        # The review decides, not the number: no scoreGiven unless the profile opts in.
        (28, "FullyGraded", None, "Proctoring complete"),
        (50, "PendingManual", None, "Proctoring under review"),
        (87, "PendingManual", None, "Proctoring under review"),
    ],
    ids=["below-threshold", "at-threshold", "above-threshold"],
)
def test_report_posts_the_final_status(app, world, clock, risk, grading, given, comment):
    finished_attempt(world, report={"overall_risk_score": risk})
    drain(app, clock)
    score = world.gradebook()
    assert (score["activityProgress"], score["gradingProgress"]) == ("Completed", grading)
    assert score.get("scoreGiven") == given
    if given is not None:
        assert score["scoreMaximum"] == 100
    assert comment in score["comment"]
    assert "http" not in score["comment"]
    assert world.history()[-1] == ("Completed", grading)


# -- ordering ------------------------------------------------------------------------------------


def test_late_started_job_never_overwrites_the_final_status(app, world, clock):
    finished_attempt(world, report={"overall_risk_score": 28})
    world.delay_job("ags.publish_status", "started", clock.now + timedelta(minutes=30))
    drain(app, clock)
    assert world.gradebook()["gradingProgress"] == "FullyGraded"
    drain(app, clock, seconds=3600)  # the held-back job runs last
    assert world.gradebook()["gradingProgress"] == "FullyGraded"
    assert world.history() == [("Completed", "Pending"), ("Completed", "FullyGraded")]
    assert all(job.status == JobStatus.SUCCEEDED.value for job in world.jobs())


def test_finish_before_start_webhook_posts_finished_and_ignores_the_late_start(app, world, clock):
    attempt = world.student_attempt()
    world.webhook(attempt, "finish")
    world.webhook(attempt, "start")
    drain(app, clock)
    assert world.history() == [("Completed", "Pending")]


def test_line_item_is_created_once_and_reused_across_attempts_and_workers(app, world, clock):
    first = world.student_attempt()
    second = world.student_attempt(sub="student-two", name="Dana Two", email="dana@example.edu")
    worker_a = Worker(app, worker_id="host-a:1", now=clock)
    worker_b = Worker(app, worker_id="host-b:2", now=clock)
    world.webhook(first, "start")
    world.webhook(second, "start")
    assert worker_a.run_once() and worker_b.run_once()
    world.webhook(first, "finish")
    world.webhook(second, "finish")
    worker_b.drain()
    assert len(world.proctoring_items()) == 1
    assert world.lineitem_posts() == 1
    assert world.gradebook()["activityProgress"] == "Completed"
    assert world.gradebook("student-two")["activityProgress"] == "Completed"


# -- the LMS misbehaving -------------------------------------------------------------------------


def test_lms_500_then_200_retries_and_delivers(app, world, clock):
    world.lms.fail_next(500, body='{"error":"Internal Server Error"}')
    attempt = world.student_attempt()
    world.webhook(attempt, "start")
    drain(app, clock)
    [job] = world.jobs()
    assert (job.status, job.attempts) == ("todo", 1)
    assert "HTTP 500" in job.last_error
    assert not world.proctoring_items()
    drain(app, clock, seconds=60)
    assert world.gradebook()["activityProgress"] == "Started"


@pytest.mark.parametrize("failure", ["503", "connection-refused", "timeout"])
def test_lms_down_for_a_while_then_every_update_arrives(app, world, clock, failure):
    for _ in range(6):
        if failure == "503":
            world.lms.fail_next(503, body="Service Unavailable")
        elif failure == "timeout":
            world.lms.break_next(requests.ReadTimeout("read timed out"))
        else:
            world.lms.break_next(requests.ConnectionError("connection refused"))
    finished_attempt(world, report={"overall_risk_score": 10})
    for _ in range(8):
        drain(app, clock, seconds=3600)
    assert not world.jobs(JobStatus.FAILED)
    assert world.jobs(JobStatus.TODO) == []
    score = world.gradebook()
    assert (score["gradingProgress"], score.get("scoreGiven")) == ("FullyGraded", None)


def test_lms_down_for_two_days_then_the_backlog_drains_in_order(app, world, clock):
    world.lms.fail_next(503, body="Service Unavailable", times=100_000)
    finished_attempt(world, report={"overall_risk_score": 10})
    for _ in range(48):
        drain(app, clock, seconds=3600)
    assert not world.jobs(JobStatus.FAILED)  # still waiting after two days, none dead
    assert not world.proctoring_items()  # nothing reached the LMS yet

    world.lms.recover()
    for _ in range(3):
        drain(app, clock, seconds=3600)

    assert not world.jobs(JobStatus.FAILED) and not world.jobs(JobStatus.TODO)
    score = world.gradebook()
    # No scoreGiven: the review decides, not the number (issue 8), unless a profile opts in.
    assert (score["gradingProgress"], score.get("scoreGiven")) == ("FullyGraded", None)
    # Whatever order the held-back jobs ran in, the column never went back to an older status.
    rank = {("Started", "Pending"): 0, ("Completed", "Pending"): 1, ("Completed", "FullyGraded"): 2}
    shown = [rank[entry] for entry in world.history()]
    assert shown == sorted(shown)


def test_expired_token_gets_one_fresh_token_and_the_status_arrives(app, world, clock):
    attempt = world.student_attempt()
    world.webhook(attempt, "start")
    drain(app, clock)
    assert len(world.lms.token_requests) == 1
    world.lms.expire_tokens()
    world.webhook(attempt, "finish")
    drain(app, clock)
    assert len(world.lms.token_requests) == 2
    assert world.history() == [("Started", "Pending"), ("Completed", "Pending")]
    assert not world.jobs(JobStatus.FAILED)


def test_token_is_shared_by_jobs_and_workers(app, world, clock):
    finished_attempt(world, report={"overall_risk_score": 5})
    Worker(app, worker_id="host-a:1", now=clock).run_once()
    Worker(app, worker_id="host-b:2", now=clock).drain()
    assert len(world.history()) == 3
    assert len(world.lms.token_requests) == 1


def test_429_waits_as_long_as_retry_after_asks(app, world, clock):
    world.lms.fail_next(429, headers={"Retry-After": "600"}, body="Too Many Requests")
    attempt = world.student_attempt()
    world.webhook(attempt, "start")
    drain(app, clock)
    [job] = world.jobs()
    assert job.status == "todo"
    assert job.scheduled_at >= clock.now + timedelta(seconds=600)
    assert drain(app, clock, seconds=300) == 0
    assert drain(app, clock, seconds=301) == 1
    assert world.gradebook()["activityProgress"] == "Started"


ANSWERS = {
    "moodle": "Incorrect score received",
    "canvas": "User not found in course or is not a student",
}


def test_refusal_retrying_cannot_fix_makes_the_job_dead_with_the_lms_answer(
    app, world, clock, runner
):
    attempt = world.student_attempt()
    world.lms.students.discard(world.default_sub)  # unenrolled after the launch
    world.webhook(attempt, "start")
    drain(app, clock)
    [job] = world.jobs()
    assert job.status == JobStatus.FAILED.value
    assert job.attempts == 1  # no retries: the LMS would refuse again
    assert ANSWERS[world.family] in job.last_error
    assert attempt.id in job.last_error
    listed = runner.invoke(args=["jobs", "list", "--dead"])
    assert listed.exit_code == 0
    assert ANSWERS[world.family] in listed.output
    assert PROCTOR_CONFIG["TRUSTEXAM_API_KEY"] not in listed.output


def test_line_item_deleted_in_the_lms_is_created_again(app, world, clock):
    attempt = world.student_attempt()
    world.webhook(attempt, "start")
    drain(app, clock)
    [old] = world.proctoring_items()
    world.lms.delete_line_item(old["id"])
    world.webhook(attempt, "finish")
    drain(app, clock)
    [new] = world.proctoring_items()
    assert new["id"] != old["id"]
    assert new["label"] == old["label"]
    assert world.exam().proctoring_lineitem_url == new["id"]
    assert world.history() == [("Completed", "Pending")]
    assert not world.jobs(JobStatus.FAILED)


# -- no gradebook --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ags",
    [None, {"scope": [SCORE]}, {"scope": [LINEITEM, SCORE]}],
    ids=["no-ags-claim", "score-scope-only", "no-lineitems-url"],
)
def test_launch_without_usable_ags_skips_the_gradebook_cleanly(app, world, clock, ags):
    claims = world.claims()
    drop = ["ags"] if ags is None else []
    if ags is not None:
        claims["ags"] = ags
        if ags["scope"] == [SCORE]:
            claims["ags"]["lineitems"] = world.lms.lineitems_url
    assert world.launcher.launch(overrides=claims, drop=drop).status_code == 200
    attempt = world.latest_attempt()
    world.webhook(attempt, "start")
    world.webhook(attempt, "finish")
    drain(app, clock)
    assert world.lms.service_requests == []
    assert world.lms.token_requests == []
    statuses = {job.kind: job.status for job in world.jobs() if job.kind == "ags.publish_status"}
    assert statuses == {"ags.publish_status": "succeeded"}


def test_exam_keeps_its_line_item_url_across_launches(app, world, clock):
    finished_attempt(world)
    drain(app, clock)
    url = world.exam().proctoring_lineitem_url
    world.launch(role="instructor")
    with app.app_context():
        assert db.session.get(Exam, world.exam().id).proctoring_lineitem_url == url


def test_two_workers_at_once_create_one_line_item(app, world, clock):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("concurrent workers need PostgreSQL row locks; SQLite runs one worker")
    attempts = [world.student_attempt(sub=f"student-{n}", name=f"S {n}") for n in range(2)]
    for attempt in attempts:
        world.webhook(attempt, "start")
    world.lms.token_delay_s = 0.2  # both workers are in flight together
    start = threading.Barrier(2)

    def work(name):
        start.wait()
        Worker(app, worker_id=name, now=clock).run_once()

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert world.lineitem_posts() == 1
    assert len(world.lms.token_requests) == 1
    assert [world.gradebook(f"student-{n}")["activityProgress"] for n in range(2)] == [
        "Started",
        "Started",
    ]
