"""The worker yields to the web tier: NOTIFY wakes it (no busy polling), it claims in batches,
hands back unstarted jobs when stopped, lowers its OS priority and runs the housekeeping.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from lti_proctor.extensions import db
from lti_proctor.jobs import worker as worker_module
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.jobs.worker import HOUSEKEEPING_KEY, NotifyListener, Worker
from tests.results.world import Clock

from .conftest import reload


def add_job(kind: str, payload: dict[str, Any] | None = None, **kw: Any) -> int:
    job = enqueue(kind, payload or {}, **kw)
    db.session.commit()
    assert job is not None
    return int(job.id)


@pytest.fixture
def on_postgresql(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")


def wait_in_thread(
    listener: NotifyListener, timeout_s: float
) -> tuple[threading.Thread, list[bool]]:
    woken: list[bool] = []
    thread = threading.Thread(target=lambda: woken.append(listener.wait(timeout_s)))
    thread.start()
    return thread, woken


def test_committed_enqueue_wakes_a_listening_worker(
    app: Flask, ctx: None, on_postgresql: None
) -> None:
    listener = NotifyListener(db.engine)
    try:
        thread, woken = wait_in_thread(listener, 30)
        add_job("test.ok", {"n": 1})
        thread.join(30)
        assert woken == [True]
    finally:
        listener.close()


def test_rolled_back_or_future_enqueue_wakes_nobody(
    app: Flask, ctx: None, on_postgresql: None, clock: Clock
) -> None:
    listener = NotifyListener(db.engine)
    try:
        enqueue("test.ok", {"n": 1})
        db.session.rollback()  # the job never existed: nothing to wake for
        add_job("test.ok", {"n": 2}, run_at=clock.now + timedelta(hours=1))  # not due yet
        assert listener.wait(0.5) is False
    finally:
        listener.close()


def test_a_burst_of_enqueues_in_one_transaction_is_one_wake_up(
    app: Flask, ctx: None, on_postgresql: None
) -> None:
    listener = NotifyListener(db.engine)
    try:
        for n in range(5):
            enqueue("test.ok", {"n": n})
        db.session.commit()
        assert listener.wait(10) is True
        assert listener.wait(0.2) is False  # folded into one, and drained with it
    finally:
        listener.close()


def test_idle_worker_on_postgresql_runs_a_new_job_without_waiting_for_the_poll(
    app: Flask, ctx: None, on_postgresql: None, calls: list[dict[str, Any]]
) -> None:
    # Poll and fallback are an hour: only the NOTIFY can bring the job in within the deadline.
    app.config.update(OUTBOX_LISTEN_FALLBACK_S=3600)
    worker = Worker(app, worker_id="listener", poll_interval_s=3600)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while worker._listener is None and time.monotonic() < deadline:
            time.sleep(0.02)
        add_job("test.ok", {"n": 1})
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert calls == [{"n": 1}]


def test_claim_batch_takes_up_to_the_batch_in_due_order_and_leaves_the_rest(
    app: Flask, ctx: None, clock: Clock
) -> None:
    ids = [add_job("test.ok", {"n": n}) for n in range(5)]
    first = Worker(app, worker_id="a", now=clock).claim_batch(3)
    second = Worker(app, worker_id="b", now=clock).claim_batch(3)
    assert [j.id for j in first] == ids[:3]
    assert [j.id for j in second] == ids[3:]
    assert {reload(i).locked_by for i in ids[:3]} == {"a"}


def test_a_stopped_worker_hands_back_the_jobs_it_did_not_start(
    app: Flask, ctx: None, clock: Clock, register: Any
) -> None:
    stop = threading.Event()
    ran: list[int] = []

    def deploy_stops_us(payload: dict[str, Any]) -> None:
        ran.append(payload["n"])
        stop.set()

    register("test.stop", deploy_stops_us)
    ids = [add_job("test.stop", {"n": n}) for n in range(3)]
    worker = Worker(app, worker_id="w", now=clock)
    assert worker.run_batch(stop) == 1
    assert ran == [0]
    assert [(reload(i).status, reload(i).locked_by) for i in ids] == [
        ("succeeded", "w"),
        ("todo", None),
        ("todo", None),
    ]
    assert [reload(i).attempts for i in ids] == [0, 0, 0]  # handing back costs no attempt
    assert Worker(app, worker_id="next", now=clock).drain() == 2
    assert ran == [0, 1, 2]


def test_drain_runs_more_jobs_than_one_batch(
    app: Flask, ctx: None, clock: Clock, calls: list[dict[str, Any]]
) -> None:
    app.config["OUTBOX_CLAIM_BATCH"] = 2
    for n in range(5):
        add_job("test.ok", {"n": n})
    assert Worker(app, worker_id="w", now=clock).drain() == 5
    assert calls == [{"n": n} for n in range(5)]


def test_housekeeping_runs_when_due_and_not_again_before_the_interval(
    app: Flask, ctx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[int] = []
    monkeypatch.setitem(app.extensions, HOUSEKEEPING_KEY, lambda: rounds.append(1))
    worker = Worker(app, worker_id="w")
    worker.housekeep_if_due()
    worker.housekeep_if_due()
    assert rounds == [1]
    worker._next_housekeeping = time.monotonic() - 1  # the interval has passed
    worker.housekeep_if_due()
    assert rounds == [1, 1]


def test_failing_housekeeping_only_logs(
    app: Flask, ctx: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("disk full")

    monkeypatch.setitem(app.extensions, HOUSEKEEPING_KEY, broken)
    Worker(app, worker_id="w").housekeep_if_due()
    assert "housekeeping failed" in caplog.text


@pytest.fixture
def nice_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record os.nice instead of lowering the test process's own priority."""
    seen: list[int] = []

    def nice(increment: int) -> int:
        seen.append(increment)
        return 10

    monkeypatch.setattr(worker_module.os, "nice", nice)
    return seen


def test_worker_command_lowers_its_priority_by_the_configured_nice(
    app: Flask, runner: FlaskCliRunner, nice_calls: list[int]
) -> None:
    app.config["OUTBOX_WORKER_NICE"] = 10  # the default (tests/conftest.py turns it off)
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert nice_calls == [10]
    assert "Worker priority lowered: nice 10." in result.output


def test_worker_command_nice_option_wins_and_zero_keeps_the_priority(
    app: Flask, runner: FlaskCliRunner, nice_calls: list[int]
) -> None:
    app.config["OUTBOX_WORKER_NICE"] = 10
    assert runner.invoke(args=["worker", "--once", "--nice", "0"]).exit_code == 0
    assert runner.invoke(args=["worker", "--once", "--nice", "5"]).exit_code == 0
    assert nice_calls == [5]
    assert runner.invoke(args=["worker", "--once", "--nice", "20"]).exit_code == 2


def test_default_nice_is_ten() -> None:
    from lti_proctor.config import Defaults

    assert Defaults.OUTBOX_WORKER_NICE == 10
