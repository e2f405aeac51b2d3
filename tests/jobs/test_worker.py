from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.jobs.retry import JobCancelledError, PermanentJobError, RetryPolicy
from lti_proctor.jobs.worker import Worker, run_jobs, start_embedded_worker, stop_embedded_worker
from lti_proctor.proctoring.errors import ProviderRejectedError, ProviderUnavailableError
from lti_proctor.store import StoreEntry
from lti_proctor.timeutil import utcnow
from tests.results.world import Clock

from .conftest import Handler, reload

Register = Callable[[str, Handler], None]
NO_JITTER = RetryPolicy(max_attempts=3, base_delay_s=30, max_delay_s=3600, jitter=0)


def add_job(kind: str, payload: dict[str, Any] | None = None, **kw: Any) -> int:
    job = enqueue(kind, payload if payload is not None else {}, **kw)
    db.session.commit()
    assert job is not None
    return int(job.id)


def make_worker(app: Flask, clock: Clock, name: str = "w1", **kw: Any) -> Worker:
    kw.setdefault("policy", NO_JITTER)
    return Worker(app, worker_id=name, lease_s=60, poll_interval_s=0.01, now=clock, **kw)


def failing(*excs: Exception) -> Handler:
    """A handler that raises each of excs in turn, then succeeds."""
    queue = list(excs)

    def handler(payload: dict[str, Any]) -> None:
        if queue:
            raise queue.pop(0)

    return handler


# -- success ----------------------------------------------------------------------------------


def test_run_jobs_runs_the_handler_with_the_payload_and_marks_success(
    app: Flask, ctx: None, calls: list[dict[str, Any]]
) -> None:
    job_id = add_job("test.ok", {"attempt_id": 3})

    assert run_jobs(app) == 1

    assert calls == [{"attempt_id": 3}]
    job = reload(job_id)
    assert (job.status, job.attempts, job.last_error) == ("succeeded", 0, None)
    assert job.locked_by is not None and job.locked_by.endswith(":inline")
    assert run_jobs(app) == 0  # nothing runs twice
    assert len(calls) == 1


def test_run_once_without_due_jobs_returns_false(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    add_job("test.ok", run_at=clock.now + timedelta(seconds=10))
    assert make_worker(app, clock).run_once() is False
    assert calls == []


def test_jobs_run_in_scheduled_order_then_id(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    base = clock.now - timedelta(minutes=5)
    add_job("test.ok", {"n": "late"}, run_at=base + timedelta(seconds=2))
    add_job("test.ok", {"n": "first"}, run_at=base)
    add_job("test.ok", {"n": "second"}, run_at=base)

    assert make_worker(app, clock).drain() == 3
    assert [c["n"] for c in calls] == ["first", "second", "late"]


def test_drain_stops_after_max_jobs(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    for n in range(5):
        add_job("test.ok", {"n": n})
    assert make_worker(app, clock).drain(max_jobs=2) == 2
    assert len(calls) == 2


def test_what_the_handler_writes_commits_with_its_success(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    def handler(payload: dict[str, Any]) -> None:
        expires = utcnow() + timedelta(hours=1)
        db.session.add(StoreEntry(key=payload["key"], value="done", expires_at=expires))

    register("test.write", handler)
    add_job("test.write", {"key": "k1"})
    make_worker(app, clock).run_once()
    assert db.session.get(StoreEntry, "k1") is not None


def test_what_a_failing_handler_wrote_is_rolled_back(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    def handler(payload: dict[str, Any]) -> None:
        expires = utcnow() + timedelta(hours=1)
        db.session.add(StoreEntry(key="half-done", value="x", expires_at=expires))
        db.session.flush()
        raise ProviderUnavailableError(status=503)

    register("test.half", handler)
    job_id = add_job("test.half")
    make_worker(app, clock).run_once()
    assert reload(job_id).status == "todo"
    assert db.session.get(StoreEntry, "half-done") is None


# -- retries and dead jobs --------------------------------------------------------------------


def test_retryable_error_then_success_waits_for_the_backoff(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    register("test.flaky", failing(ProviderUnavailableError("LMS answered 503", status=503)))
    job_id = add_job("test.flaky")
    worker = make_worker(app, clock)

    assert worker.run_once() is True
    job = reload(job_id)
    assert (job.status, job.attempts) == ("todo", 1)
    assert job.scheduled_at == clock.now + timedelta(seconds=30)
    assert job.last_error == "ProviderUnavailableError: LMS answered 503 (status 503)"
    assert job.locked_by is None and job.lease_expires_at is None

    clock.advance(29.9)
    assert worker.run_once() is False
    clock.advance(0.1)
    assert worker.run_once() is True
    job = reload(job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)


def test_second_retry_waits_twice_as_long(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    register("test.flaky", failing(ProviderUnavailableError(), ProviderUnavailableError()))
    job_id = add_job("test.flaky")
    worker = make_worker(app, clock)
    worker.run_once()
    clock.advance(30)
    worker.run_once()
    assert reload(job_id).scheduled_at == clock.now + timedelta(seconds=60)


def test_retry_after_longer_than_the_backoff_is_honoured(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    register("test.busy", failing(ProviderUnavailableError(status=429, retry_after_s=120)))
    job_id = add_job("test.busy")
    worker = make_worker(app, clock)
    worker.run_once()
    assert reload(job_id).scheduled_at == clock.now + timedelta(seconds=120)
    clock.advance(60)
    assert worker.run_once() is False


def test_retryable_error_on_the_last_attempt_makes_the_job_dead(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    runs: list[int] = []

    def always_down(payload: dict[str, Any]) -> None:
        runs.append(1)
        raise ProviderUnavailableError("service unavailable", status=503)

    register("test.down", always_down)
    job_id = add_job("test.down")
    worker = make_worker(app, clock)
    for _ in range(5):
        worker.run_once()
        clock.advance(3600)

    assert len(runs) == 3  # max_attempts
    job = reload(job_id)
    assert (job.status, job.attempts) == ("failed", 3)
    assert job.last_error == "ProviderUnavailableError: service unavailable (status 503)"


def test_retryable_job_outlives_max_attempts_within_the_horizon_then_dies(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    """An LMS down for two days: the job is still waiting, not dead; after three days it is."""
    runs: list[int] = []

    def always_down(payload: dict[str, Any]) -> None:
        runs.append(1)
        raise ProviderUnavailableError("service unavailable", status=503)

    register("test.down", always_down)
    job_id = add_job("test.down")
    policy = RetryPolicy(max_attempts=3, max_delay_s=3600, jitter=0, horizon_s=3 * 86400)
    worker = make_worker(app, clock, policy=policy)
    for _ in range(48):  # two days, one look an hour
        worker.run_once()
        clock.advance(3600)

    assert reload(job_id).status == "todo"
    assert len(runs) > 3
    for _ in range(30):
        worker.run_once()
        clock.advance(3600)

    job = reload(job_id)
    assert job.status == "failed"
    assert job.last_error == "ProviderUnavailableError: service unavailable (status 503)"


def test_outage_backlog_succeeds_once_the_lms_is_back(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    down = {"until": clock.now + timedelta(hours=30)}
    done: list[int] = []

    def flaky(payload: dict[str, Any]) -> None:
        if clock.now < down["until"]:
            raise ProviderUnavailableError("bad gateway", status=502)
        done.append(payload["n"])

    register("test.flaky", flaky)
    ids = [add_job("test.flaky", {"n": n}) for n in range(3)]
    worker = make_worker(app, clock, policy=RetryPolicy.from_config(app.config))
    for _ in range(2000):
        if len(done) == 3:
            break
        if not worker.run_once():
            clock.advance(600)

    assert sorted(done) == [0, 1, 2]
    assert {reload(i).status for i in ids} == {"succeeded"}


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (ValueError("attempt 9 has no line item"), "ValueError: attempt 9 has no line item"),
        (PermanentJobError("user not enrolled"), "PermanentJobError: user not enrolled"),
        (ProviderRejectedError("bad request", status=400), "ProviderRejectedError: bad request"),
        (KeyError("attempt_id"), "KeyError: 'attempt_id'"),
    ],
)
def test_non_retryable_error_makes_the_job_dead_at_once(
    app: Flask, ctx: None, clock: Clock, register: Register, exc: Exception, error: str
) -> None:
    register("test.broken", failing(exc))
    job_id = add_job("test.broken")
    make_worker(app, clock).run_once()
    job = reload(job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.last_error is not None and job.last_error.startswith(error)
    clock.advance(7200)
    assert make_worker(app, clock).run_once() is False


def test_job_cancelled_error_ends_the_job_as_cancelled(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    register("test.moot", failing(JobCancelledError("attempt 4 was deleted")))
    job_id = add_job("test.moot")
    make_worker(app, clock).run_once()
    job = reload(job_id)
    assert (job.status, job.last_error) == ("cancelled", "JobCancelledError: attempt 4 was deleted")


def test_unknown_kind_is_retried_and_says_why(app: Flask, ctx: None, clock: Clock) -> None:
    job_id = add_job("test.nobody-handles-this")
    make_worker(app, clock).run_once()
    job = reload(job_id)
    assert (job.status, job.attempts) == ("todo", 1)
    assert "no handler is registered for job kind 'test.nobody-handles-this'" in str(job.last_error)


def test_worker_runs_the_handlers_it_is_given_instead_of_the_apps(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    given: list[dict[str, Any]] = []
    job_id = add_job("test.ok", {"n": 1})

    assert make_worker(app, clock, handlers={"test.ok": given.append}).run_once() is True

    assert (given, calls) == ([{"n": 1}], [])
    assert reload(job_id).status == "succeeded"


def test_last_error_carries_no_credentials(
    app: Flask, ctx: None, clock: Clock, register: Register
) -> None:
    register("test.leaky", failing(RuntimeError("token request failed: Bearer sekrit-value")))
    job_id = add_job("test.leaky")
    make_worker(app, clock).run_once()
    assert "sekrit-value" not in str(reload(job_id).last_error)


# -- leases: a worker that dies after claiming ------------------------------------------------


def test_job_of_a_worker_that_died_is_claimed_again_only_after_the_lease(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    job_id = add_job("test.ok", {"attempt_id": 5})
    dead = make_worker(app, clock, "dead-worker")
    claimed = dead.claim()  # ... and the process dies before running it
    assert claimed is not None and claimed.id == job_id
    job = reload(job_id)
    assert (job.status, job.locked_by) == ("doing", "dead-worker")
    assert job.lease_expires_at == clock.now + timedelta(seconds=60)

    other = make_worker(app, clock, "other-worker")
    clock.advance(59)
    assert other.run_once() is False
    assert calls == []

    clock.advance(1)
    assert other.run_once() is True
    assert calls == [{"attempt_id": 5}]
    job = reload(job_id)
    assert (job.status, job.locked_by, job.attempts) == ("succeeded", "other-worker", 1)
    assert job.last_error == "LeaseExpired: worker dead-worker did not finish the job"


def test_late_result_of_a_worker_whose_lease_was_taken_over_is_dropped(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]], register: Register
) -> None:
    job_id = add_job("test.ok", {"n": 1})
    slow = make_worker(app, clock, "slow-worker")
    claimed = slow.claim()
    assert claimed is not None
    clock.advance(61)
    assert make_worker(app, clock, "other-worker").run_once() is True

    register("test.ok", failing(ValueError("too late")))
    assert slow.run(claimed) is None  # the slow worker's failure must not bury the job

    job = reload(job_id)
    assert (job.status, job.locked_by) == ("succeeded", "other-worker")


def test_expired_lease_on_the_last_attempt_makes_the_job_dead(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    job_id = add_job("test.ok")
    policy = RetryPolicy(max_attempts=2, jitter=0)
    for name in ("crash-1", "crash-2"):
        assert make_worker(app, clock, name, policy=policy).claim() is not None
        clock.advance(61)

    assert make_worker(app, clock, "w3", policy=policy).run_once() is False
    assert calls == []
    job = reload(job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.last_error == "LeaseExpired: worker crash-2 did not finish the job"


# -- loops and threads ------------------------------------------------------------------------


def test_run_forever_runs_jobs_and_stops_when_asked(
    app: Flask, ctx: None, calls: list[dict[str, Any]]
) -> None:
    add_job("test.ok", {"n": 1})
    stop = threading.Event()
    worker = Worker(app, worker_id="loop", poll_interval_s=0.01)
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        add_job("test.ok", {"n": 2})  # picked up by the next poll
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(2)
    assert not thread.is_alive()
    assert calls == [{"n": 1}, {"n": 2}]


def test_run_forever_survives_a_database_error(
    app: Flask, ctx: None, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = Worker(app, worker_id="loop", poll_interval_s=0.01)
    real_claim = worker.claim_batch
    outages = [sa.exc.OperationalError("select", {}, Exception("server closed the connection"))]

    def claim_batch(limit: int) -> Any:
        if outages:
            raise outages.pop()
        return real_claim(limit)

    monkeypatch.setattr(worker, "claim_batch", claim_batch)
    add_job("test.ok", {"n": 1})
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(2)
    assert calls == [{"n": 1}]


def test_two_workers_on_postgresql_run_every_job_exactly_once(
    app: Flask, ctx: None, register: Register
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("concurrent workers need PostgreSQL row locks; SQLite runs one worker")
    lock = threading.Lock()
    running: set[int] = set()
    overlaps: list[int] = []
    runs: Counter[int] = Counter()
    ran_by: dict[str, int] = Counter()

    def handler(payload: dict[str, Any]) -> None:
        n = payload["n"]
        with lock:
            if n in running:
                overlaps.append(n)
            running.add(n)
            runs[n] += 1
            ran_by[threading.current_thread().name] += 1
        time.sleep(0.001)
        with lock:
            running.discard(n)

    register("test.count", handler)
    total = 200
    for n in range(total):
        enqueue("test.count", {"n": n})
    db.session.commit()

    start = threading.Barrier(2)
    drained: dict[str, int] = {}

    def work(name: str) -> None:
        start.wait()
        drained[name] = Worker(app, worker_id=name, poll_interval_s=0.01).drain(max_jobs=total)

    threads = [threading.Thread(target=work, args=(f"w{i}",), name=f"w{i}") for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert overlaps == []
    assert runs == Counter(range(total))  # each job exactly once
    assert sum(drained.values()) == total
    assert all(ran_by[name] > 0 for name in ("w1", "w2")), ran_by
    statuses = db.session.execute(
        sa.select(OutboxJob.status, OutboxJob.locked_by, sa.func.count()).group_by(
            OutboxJob.status, OutboxJob.locked_by
        )
    ).all()
    assert {(s, by) for s, by, _ in statuses} == {("succeeded", "w1"), ("succeeded", "w2")}


# -- the embedded worker thread ---------------------------------------------------------------


@pytest.fixture
def embedded_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config.update(
        OUTBOX_EMBEDDED_WORKER=True,
        OUTBOX_EMBEDDED_WORKER_IN_TESTS=True,
        OUTBOX_POLL_INTERVAL_S=0.02,
    )
    return app_config


def wait_for_status(job_id: int, status: str, timeout_s: float = 5) -> OutboxJob:
    deadline = time.monotonic() + timeout_s
    while (job := reload(job_id)).status != status and time.monotonic() < deadline:
        time.sleep(0.02)
    return job


def test_embedded_worker_starts_once_on_the_first_request_and_runs_jobs(
    embedded_config: dict[str, Any], app: Flask, ctx: None, calls: list[dict[str, Any]]
) -> None:
    job_id = add_job("test.ok", {"n": 1})
    assert "lti_proctor.embedded_worker" not in app.extensions  # CLI-built apps stay idle
    client = app.test_client()
    try:
        client.get("/no-such-page")
        embedded = app.extensions["lti_proctor.embedded_worker"]
        client.get("/no-such-page")
        assert app.extensions["lti_proctor.embedded_worker"] is embedded
        assert [t.name for t in threading.enumerate()].count("lti-proctor-outbox") == 1

        assert wait_for_status(job_id, "succeeded").status == "succeeded"
        assert calls == [{"n": 1}]
    finally:
        stop_embedded_worker(app)
    assert not embedded.thread.is_alive()


def test_embedded_worker_is_on_by_default_only_with_sqlite(
    app_config: dict[str, Any], app: Flask
) -> None:
    # The embedded SQLite setup runs one worker thread; a configured server database relies on
    # `lti-proctor worker` processes instead.
    on_sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    assert app.config["OUTBOX_EMBEDDED_WORKER"] is on_sqlite
    app.test_client().get("/no-such-page")
    assert "lti_proctor.embedded_worker" not in app.extensions  # never under TESTING


def test_embedded_worker_is_not_started_under_testing_by_the_flag_alone(
    app_config: dict[str, Any],
) -> None:
    from lti_proctor import create_app

    app_config["OUTBOX_EMBEDDED_WORKER"] = True
    app = create_app(app_config)
    app.test_client().get("/no-such-page")
    assert "lti_proctor.embedded_worker" not in app.extensions
    with app.app_context():
        db.engine.dispose()


def test_start_embedded_worker_twice_keeps_one_thread(app: Flask) -> None:
    first = start_embedded_worker(app)
    try:
        assert start_embedded_worker(app) is first
    finally:
        stop_embedded_worker(app)
    assert not first.thread.is_alive()


def test_unexpected_error_logs_its_traceback_redacted(
    app: Flask, ctx: None, clock: Clock, register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    register("test.bug", failing(RuntimeError("token call failed: Bearer sdk-token-77")))
    add_job("test.bug")
    make_worker(app, clock).run_once()
    [record] = [r for r in caplog.records if "dead" in r.getMessage()]
    text = record.getMessage()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: token call failed: Bearer [redacted]" in text
    assert "sdk-token-77" not in text
