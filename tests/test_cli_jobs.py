from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.jobs.worker import job_handlers, run_jobs
from lti_proctor.proctoring.errors import ProviderUnavailableError


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config.update(
        OUTBOX_MAX_ATTEMPTS=2,
        OUTBOX_BASE_DELAY_S=0,
        OUTBOX_POLL_INTERVAL_S=0.02,
        OUTBOX_RETRY_HORIZON_S=0,  # these jobs die after their attempts, not days later
    )
    return app_config


@pytest.fixture
def ran(app: Flask) -> Iterator[list[dict[str, Any]]]:
    """Test handlers: test.ok records, test.down is always unavailable, test.bug raises."""
    seen: list[dict[str, Any]] = []

    def down(payload: dict[str, Any]) -> None:
        raise ProviderUnavailableError("LMS answered 503 Service Unavailable", status=503)

    def bug(payload: dict[str, Any]) -> None:
        raise ValueError("attempt 12 has no line item URL")

    job_handlers(app).update({"test.ok": seen.append, "test.down": down, "test.bug": bug})
    yield seen


def add_job(app: Flask, kind: str, payload: dict[str, Any] | None = None) -> int:
    with app.app_context():
        job = enqueue(kind, payload or {})
        db.session.commit()
        assert job is not None
        return int(job.id)


def get_job(app: Flask, job_id: int) -> OutboxJob:
    with app.app_context():
        job = db.session.get(OutboxJob, job_id)
        assert job is not None
        db.session.expunge(job)
        return job


@pytest.fixture
def dead_jobs(app: Flask, ran: list[dict[str, Any]]) -> tuple[int, int, int]:
    """A job dead after its retries, one dead at once, and one that succeeded."""
    down, bug, ok = add_job(app, "test.down"), add_job(app, "test.bug"), add_job(app, "test.ok")
    run_jobs(app)
    return down, bug, ok


def test_jobs_list_dead_shows_dead_jobs_with_their_error(
    runner: FlaskCliRunner, dead_jobs: tuple[int, int, int]
) -> None:
    down, bug, _ = dead_jobs
    result = runner.invoke(args=["jobs", "list", "--dead"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "kind", "status", "attempts", "scheduled_at", "last_error"]
    assert lines[1].split()[:4] == [str(bug), "test.bug", "failed", "1"]
    assert "ValueError: attempt 12 has no line item URL" in lines[1]
    assert lines[2].split()[:4] == [str(down), "test.down", "failed", "2"]
    # --dead shows the reason in full (up to 240 characters): it is what the admin acts on.
    assert "ProviderUnavailableError: LMS answered 503 Service Unavailable (status 503)" in lines[2]
    assert "test.ok" not in result.output
    assert lines[-1] == "Outbox: 2 failed, 1 succeeded."


def test_jobs_list_shows_every_status_newest_first_up_to_the_limit(
    app: Flask, runner: FlaskCliRunner, dead_jobs: tuple[int, int, int]
) -> None:
    waiting = add_job(app, "test.ok", {"n": 2})
    result = runner.invoke(args=["jobs", "list", "--limit", "2"])

    assert result.exit_code == 0, result.output
    rows = [line.split()[:3] for line in result.output.splitlines()[1:-1]]
    assert rows == [[str(waiting), "test.ok", "todo"], [str(dead_jobs[2]), "test.ok", "succeeded"]]


def test_jobs_list_on_an_empty_outbox_says_so(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["jobs", "list"])
    assert (result.exit_code, result.output) == (0, "Outbox: no jobs.\n")


def test_jobs_retry_revives_a_dead_job_which_then_runs(
    app: Flask, runner: FlaskCliRunner, dead_jobs: tuple[int, int, int], ran: list[dict[str, Any]]
) -> None:
    down, _, _ = dead_jobs
    job_handlers(app)["test.down"] = ran.append  # the LMS is back

    result = runner.invoke(args=["jobs", "retry", str(down)])

    assert result.exit_code == 0, result.output
    assert result.output == f"Queued job {down} (test.down) again.\n"
    job = get_job(app, down)
    assert (job.status, job.attempts) == ("todo", 0)
    assert run_jobs(app) == 1
    assert get_job(app, down).status == "succeeded"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "retry", "999"], "no job 999"),
        (["jobs", "retry", "{ok}"], "is succeeded, not dead"),
        (["jobs", "retry"], "give a job ID or --all-dead"),
        (["jobs", "retry", "{ok}", "--all-dead"], "give a job ID or --all-dead"),
    ],
)
def test_jobs_retry_refuses_what_it_cannot_revive(
    runner: FlaskCliRunner, dead_jobs: tuple[int, int, int], args: list[str], message: str
) -> None:
    args = [a.format(ok=dead_jobs[2]) for a in args]
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output


def test_jobs_retry_all_dead_asks_first_and_a_no_changes_nothing(
    app: Flask, runner: FlaskCliRunner, dead_jobs: tuple[int, int, int]
) -> None:
    result = runner.invoke(args=["jobs", "retry", "--all-dead"], input="n\n")
    assert result.exit_code == 1
    assert "Put 2 dead job(s) back in the queue?" in result.output
    assert [get_job(app, j).status for j in dead_jobs] == ["failed", "failed", "succeeded"]


@pytest.mark.parametrize(("args", "answer"), [([], "y\n"), (["--yes"], None)])
def test_jobs_retry_all_dead_revives_every_dead_job(
    app: Flask,
    runner: FlaskCliRunner,
    dead_jobs: tuple[int, int, int],
    args: list[str],
    answer: str | None,
) -> None:
    result = runner.invoke(args=["jobs", "retry", "--all-dead", *args], input=answer)
    assert result.exit_code == 0, result.output
    assert result.output.endswith("Queued 2 dead job(s) again.\n")
    assert [(get_job(app, j).status, get_job(app, j).attempts) for j in dead_jobs] == [
        ("todo", 0),
        ("todo", 0),
        ("succeeded", 0),
    ]


def test_jobs_retry_all_dead_with_none_dead_says_so(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["jobs", "retry", "--all-dead"])
    assert (result.exit_code, result.output) == (0, "No dead jobs.\n")


def test_worker_once_runs_the_due_jobs_and_exits(
    app: Flask, runner: FlaskCliRunner, ran: list[dict[str, Any]]
) -> None:
    jobs = [add_job(app, "test.ok", {"n": n}) for n in range(3)]
    result = runner.invoke(args=["worker", "--once", "--id", "cron-1"])
    assert result.exit_code == 0, result.output
    assert result.output == "Ran 3 job(s).\n"
    assert ran == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {(get_job(app, j).status, get_job(app, j).locked_by) for j in jobs} == {
        ("succeeded", "cron-1")
    }


def test_worker_stops_after_the_current_job_on_sigterm(app: Flask, runner: FlaskCliRunner) -> None:
    def deploy_stops_us(payload: dict[str, Any]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    job_handlers(app)["test.stop"] = deploy_stops_us
    before = signal.getsignal(signal.SIGTERM)
    first, second = add_job(app, "test.stop"), add_job(app, "test.stop")

    result = runner.invoke(args=["worker", "--id", "w-term"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Worker w-term polling every 0.02s.",
        "Worker w-term stopped.",
    ]
    assert get_job(app, first).status == "succeeded"  # the current job finishes
    assert get_job(app, second).status == "todo"  # no new job starts
    assert signal.getsignal(signal.SIGTERM) is before
