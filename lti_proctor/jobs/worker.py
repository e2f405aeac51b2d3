"""The outbox worker: claims due jobs in small batches, runs their handlers one at a time, records
each outcome, and yields to the web tier (lower OS priority, no busy polling).

Claiming. A job is due when it is `todo` and its scheduled_at has come, or when it is `doing` and
its lease has run out (the worker that claimed it died or hung; that try counts as failed). The
claim is one short transaction that sets status `doing`, locked_by, locked_at and the lease, and
commits before the handler runs.
- PostgreSQL: `SELECT ... ORDER BY scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, so any
  number of workers, on any number of machines, each take a different job.
- SQLite: no row locks; the claim is a conditional UPDATE (it only succeeds if the job is still
  due), so a job is never claimed twice. SQLite has a single writer, so run ONE worker (the
  embedded thread or one `lti-proctor worker`); more only wait on each other's locks.
Each later step (success, retry, dead) is its own transaction, fenced on locked_by/locked_at, so a
worker whose lease was taken over cannot overwrite the new owner's result. Handlers run inside an
app context; what they change in the database commits together with the job's success.

Handlers. The worker runs the handler its mapping names for the job's kind; create_app() hands the
tool's mapping (results/registry.py) to init_app(), which keeps it on the app for every worker
built from that app. A kind with no handler is retried: a worker of another release may know it.
A handler takes the job's payload dict, returns nothing, is idempotent (a job may run again after
a worker dies) and raises per the protocol in jobs/retry.py.
Batches. One transaction claims up to OUTBOX_CLAIM_BATCH jobs; a worker asked to stop hands the
claimed jobs it has not started back (todo again, fenced like any update).
Waiting. An idle worker on PostgreSQL LISTENs on the channel enqueue() NOTIFYs in the enqueueing
transaction, and sleeps until a notification, the next scheduled job or lease expiry, or the
OUTBOX_LISTEN_FALLBACK_S poll, whichever comes first. Elsewhere it polls every
OUTBOX_POLL_INTERVAL_S. Between jobs it runs the app's housekeeping every HOUSEKEEPING_INTERVAL_S.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import Flask
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import Engine

from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus, OutboxJob
from lti_proctor.jobs.outbox import NOTIFY_CHANNEL
from lti_proctor.jobs.retry import (
    JobCancelledError,
    PermanentJobError,
    RetryPolicy,
    UnknownJobKindError,
    describe_error,
    is_retryable,
    redact,
)
from lti_proctor.timeutil import utcnow

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Handler = Callable[[dict[str, Any]], None]

_CLAIM_CONFLICTS_MAX = 5  # another worker took the candidate first; look again this many times
_IDLE_BACKOFF_MAX_S = 30.0  # longest pause after the database failed to answer
_EMBEDDED_KEY = "lti_proctor.embedded_worker"
_HANDLERS_KEY = "lti_proctor.job_handlers"
# app.extensions[HOUSEKEEPING_KEY]: a callable the worker runs now and then inside an app context
# (set by lti_proctor.housekeeping; the outbox imports nothing above itself).
HOUSEKEEPING_KEY = "lti_proctor.housekeeping"
_WAIT_SLICE_S = 1.0  # an idle worker notices a stop request at least this often
_embedded_lock = threading.Lock()


def lower_priority(increment: int) -> int:
    """Lower this process's OS priority (os.nice) by increment, so web workers win the CPU."""
    return os.nice(increment) if increment > 0 else os.nice(0)


def default_worker_id() -> str:
    """host:pid, which names a worker process in locked_by."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds: what the handler needs, and the claim that fences its updates."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    locked_by: str
    locked_at: datetime
    created_at: datetime | None = None  # when it was queued: the retry horizon counts from it


class Worker:
    """Claims and runs outbox jobs one at a time; see the module docstring for the rules."""

    def __init__(
        self,
        app: Flask,
        *,
        worker_id: str | None = None,
        lease_s: float | None = None,
        poll_interval_s: float | None = None,
        policy: RetryPolicy | None = None,
        now: Clock = utcnow,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        cfg = app.config
        self.app = app
        self.worker_id = (worker_id or default_worker_id())[:128]
        self.lease_s = float(lease_s if lease_s is not None else cfg["OUTBOX_STALL_AFTER_S"])
        self.poll_interval_s = float(
            poll_interval_s
            if poll_interval_s is not None
            else cfg.get("OUTBOX_POLL_INTERVAL_S", 1.0)
        )
        self.policy = policy or RetryPolicy.from_config(cfg)
        self.now = now
        self.handlers = handlers if handlers is not None else job_handlers(app)
        self.batch_size = max(1, int(cfg.get("OUTBOX_CLAIM_BATCH", 10)))
        self.listen_fallback_s = float(cfg.get("OUTBOX_LISTEN_FALLBACK_S", 30.0))
        self.housekeeping_interval_s = float(cfg.get("HOUSEKEEPING_INTERVAL_S", 300.0))
        self._next_housekeeping = 0.0  # monotonic time; the first idle moment runs it
        self._listener: NotifyListener | None = None

    # -- the loop ---------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim one due job and run it; False when no job was due."""
        with self.app.app_context():
            job = self.claim()
            if job is None:
                return False
            self.run(job)
            return True

    def run_batch(self, stop_event: threading.Event | None = None, limit: int | None = None) -> int:
        """Claim due jobs and run them; hand back those not started when asked to stop."""
        with self.app.app_context():
            jobs = self.claim_batch(min(limit or self.batch_size, self.batch_size))
            for index, job in enumerate(jobs):
                if stop_event is not None and stop_event.is_set():
                    for unstarted in jobs[index:]:
                        self.release(unstarted)
                    return index
                self.run(job)
            return len(jobs)

    def drain(self, max_jobs: int = 100) -> int:
        """Run due jobs until none is left or max_jobs ran; return how many ran."""
        count = 0
        while count < max_jobs:
            ran = self.run_batch(limit=max_jobs - count)
            if not ran:
                break
            count += ran
        return count

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run jobs until stop_event is set; a set event stops the loop after the current job."""
        logger.info("outbox worker %s started (%s)", self.worker_id, self._wake_mode())
        failures = 0
        try:
            while not stop_event.is_set():
                try:
                    ran = self.run_batch(stop_event)
                    failures = 0
                except Exception:
                    # The database is down or the claim failed: never let the loop die, wait longer.
                    failures += 1
                    logger.exception("outbox worker %s could not poll the outbox", self.worker_id)
                    ran = 0
                if not ran and not stop_event.is_set():
                    self.housekeep_if_due()
                    self._wait(stop_event, failures)
        finally:
            self._close_listener()
        logger.info("outbox worker %s stopped", self.worker_id)

    def _idle_wait_s(self, failures: int) -> float:
        if not failures:
            return self.poll_interval_s
        return min(self.poll_interval_s * 2.0 ** min(failures, 10), _IDLE_BACKOFF_MAX_S)

    # -- waiting without busy polling -------------------------------------------------------------

    def _wake_mode(self) -> str:
        if self._listens():
            return f"LISTEN {NOTIFY_CHANNEL}, fallback poll {self.listen_fallback_s:g}s"
        return f"polling every {self.poll_interval_s:g}s"

    def _listens(self) -> bool:
        with self.app.app_context():
            return bool(db.engine.dialect.name == "postgresql")

    def _wait(self, stop_event: threading.Event, failures: int) -> None:
        """Sleep until work may be due: a NOTIFY (PostgreSQL), the next due job, or the poll."""
        if failures or not self._listens():
            stop_event.wait(self._idle_wait_s(failures))
            return
        try:
            if self._listener is None:  # LISTEN first: a job committed after it notifies us,
                with self.app.app_context():  # one committed before it is seen just below
                    self._listener = NotifyListener(db.engine)
            deadline = time.monotonic() + self._listen_timeout_s()
            while not stop_event.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._listener.wait(min(remaining, _WAIT_SLICE_S)):
                    return
        except Exception:
            logger.warning(
                "outbox worker %s: LISTEN failed; polling", self.worker_id, exc_info=True
            )
            self._close_listener()
            stop_event.wait(self.poll_interval_s)

    def _listen_timeout_s(self) -> float:
        """Seconds until the next job becomes due (a scheduled retry, an expiring lease), capped."""
        with self.app.app_context():
            next_todo, next_lease = db.session.execute(
                select(
                    select(func.min(OutboxJob.scheduled_at))
                    .where(OutboxJob.status == JobStatus.TODO.value)
                    .scalar_subquery(),
                    select(func.min(OutboxJob.lease_expires_at))
                    .where(OutboxJob.status == JobStatus.DOING.value)
                    .scalar_subquery(),
                )
            ).one()
            db.session.rollback()
        now = self.now()
        waits = [(m - now).total_seconds() for m in (next_todo, next_lease) if m is not None]
        return max(0.0, min([self.listen_fallback_s, *waits]))

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # -- housekeeping ----------------------------------------------------------------------------

    def housekeep_if_due(self) -> None:
        """Run the app's housekeeping when HOUSEKEEPING_INTERVAL_S has passed; failures only log."""
        task = self.app.extensions.get(HOUSEKEEPING_KEY)
        if task is None or time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + self.housekeeping_interval_s
        with self.app.app_context():
            try:
                task()
            except Exception:
                db.session.rollback()
                logger.exception("outbox worker %s: housekeeping failed", self.worker_id)

    # -- claiming (call inside an app context; each call commits) ----------------------------

    def claim(self) -> ClaimedJob | None:
        """Claim the next due job for this worker and commit the claim; None when none is due."""
        jobs = self.claim_batch(1)
        return jobs[0] if jobs else None

    def claim_batch(self, limit: int) -> list[ClaimedJob]:
        """Claim up to limit due jobs, in due order, in one transaction per round; commit."""
        claimed: list[ClaimedJob] = []
        conflicts = 0
        while len(claimed) < limit and conflicts < _CLAIM_CONFLICTS_MAX:
            now, wanted = self.now(), limit - len(claimed)
            rows = db.session.execute(self._candidate(now, wanted)).all()
            if not rows:
                db.session.rollback()
                break
            lost = 0
            for row in rows:
                job, progressed = self._take(row, now)
                if job is not None:
                    claimed.append(job)
                elif not progressed:
                    lost += 1  # another worker took it first
            db.session.commit()
            if lost:
                conflicts += 1
            elif len(rows) < wanted:
                break  # every due job was seen; buried ones freed no new candidates
        return claimed

    def release(self, job: ClaimedJob) -> bool:
        """Hand a claimed job that was never started back to the queue (todo, due as before)."""
        return self._finish(
            job, status=JobStatus.TODO.value, locked_by=None, locked_at=None, lease_expires_at=None
        )

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            and_(OutboxJob.status == JobStatus.TODO.value, OutboxJob.scheduled_at <= now),
            and_(OutboxJob.status == JobStatus.DOING.value, OutboxJob.lease_expires_at <= now),
        )

    def _candidate(self, now: datetime, limit: int = 1) -> Any:
        query = (
            select(
                OutboxJob.id,
                OutboxJob.kind,
                OutboxJob.payload,
                OutboxJob.status,
                OutboxJob.attempts,
                OutboxJob.locked_by,
                OutboxJob.created_at,
            )
            .where(self._due(now))
            .order_by(OutboxJob.scheduled_at, OutboxJob.id)
            .limit(limit)
        )
        if db.session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        return query

    def _take(self, row: Any, now: datetime) -> tuple[ClaimedJob | None, bool]:
        """Claim row if still due; (job, _) on success, (None, True) when it was buried instead."""
        attempts = int(row.attempts)
        values: dict[str, Any] = {}
        if row.status == JobStatus.DOING.value:
            # Its worker died or hung past the lease: that try counts as a failed one.
            attempts += 1
            values["last_error"] = f"LeaseExpired: worker {row.locked_by} did not finish the job"
            if not self.policy.should_retry(attempts):
                buried = self._update_if_due(
                    row.id,
                    now,
                    status=JobStatus.FAILED.value,
                    attempts=attempts,
                    lease_expires_at=None,
                    **values,
                )
                if buried:
                    logger.warning(
                        "outbox job %s (%s) dead: %s", row.id, row.kind, values["last_error"]
                    )
                return None, buried
        taken = self._update_if_due(
            row.id,
            now,
            status=JobStatus.DOING.value,
            attempts=attempts,
            locked_by=self.worker_id,
            locked_at=now,
            lease_expires_at=now + timedelta(seconds=self.lease_s),
            **values,
        )
        if not taken:
            return None, False
        job = ClaimedJob(
            row.id,
            row.kind,
            dict(row.payload or {}),
            attempts,
            self.worker_id,
            now,
            created_at=row.created_at,
        )
        return job, True

    def _update_if_due(self, job_id: int, now: datetime, **values: Any) -> bool:
        result = db.session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == job_id, self._due(now))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0)) == 1

    # -- running (call inside an app context; each call commits) -----------------------------

    def run(self, job: ClaimedJob) -> JobStatus | None:
        """Run a claimed job's handler and record the outcome; None when the lease was lost."""
        try:
            self.handler(job.kind)(job.payload)
        except Exception as exc:
            db.session.rollback()  # nothing the failed handler wrote may commit
            return self._record_failure(job, exc)
        if self._finish(job, status=JobStatus.SUCCEEDED.value, lease_expires_at=None):
            logger.info("outbox job %s (%s) succeeded", job.id, job.kind)
            return JobStatus.SUCCEEDED
        return None

    def handler(self, kind: str) -> Handler:
        """The handler of kind; UnknownJobKindError (retried) when this worker has none."""
        try:
            return self.handlers[kind]
        except KeyError:
            raise UnknownJobKindError(f"no handler is registered for job kind {kind!r}") from None

    def _record_failure(self, job: ClaimedJob, exc: Exception) -> JobStatus | None:
        error = describe_error(exc)
        attempts = job.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if isinstance(exc, JobCancelledError):
            status = JobStatus.CANCELLED
        elif is_retryable(exc) and self.policy.should_retry(attempts, age_s=self._age_s(job)):
            status = JobStatus.TODO
            delay_s = self.policy.delay_s(attempts, exc)
            values.update(
                scheduled_at=self.now() + timedelta(seconds=delay_s),
                locked_by=None,
                locked_at=None,
            )
        else:
            status = JobStatus.FAILED
        if not self._finish(job, status=status.value, lease_expires_at=None, **values):
            return None
        self._log_failure(job, exc, status, error)
        return status

    def _age_s(self, job: ClaimedJob) -> float | None:
        """Seconds since the job was queued (None when unknown)."""
        if job.created_at is None:
            return None
        created = job.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return (self.now() - created).total_seconds()

    def _log_failure(self, job: ClaimedJob, exc: Exception, status: JobStatus, error: str) -> None:
        if status is JobStatus.FAILED and not (
            is_retryable(exc) or isinstance(exc, PermanentJobError)
        ):
            # An unexpected exception is a bug: keep its traceback, redacted like last_error,
            # since a library's exception text may carry a token it was handed.
            trace = redact("".join(traceback.format_exception(exc)).rstrip())
            logger.error("outbox job %s (%s) dead: %s\n%s", job.id, job.kind, error, trace)
            return
        logger.warning(
            "outbox job %s (%s) %s after try %s: %s",
            job.id,
            job.kind,
            status.value,
            job.attempts + 1,
            error,
        )

    def _finish(self, job: ClaimedJob, **values: Any) -> bool:
        """Write the outcome if this worker still holds the job, and commit; False if not."""
        result = db.session.execute(
            update(OutboxJob)
            .where(
                OutboxJob.id == job.id,
                OutboxJob.status == JobStatus.DOING.value,
                OutboxJob.locked_by == job.locked_by,
                OutboxJob.locked_at == job.locked_at,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0)) != 1:
            db.session.rollback()
            logger.warning(
                "outbox job %s (%s): lease lost to another worker; its result was dropped",
                job.id,
                job.kind,
            )
            return False
        db.session.commit()
        return True


class NotifyListener:
    """A dedicated PostgreSQL connection, out of the pool, LISTENing on the outbox channel."""

    def __init__(self, engine: Engine) -> None:
        raw = engine.raw_connection()
        self._conn = cast(Any, raw.driver_connection)  # a psycopg.Connection; None once detached
        raw.detach()  # its LISTEN must never reach another user of the pool
        try:
            self._conn.autocommit = True
            self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception:
            self._conn.close()
            raise

    def wait(self, timeout_s: float) -> bool:
        """True when a notification arrived within timeout_s; drains any others with it."""
        woken = any(True for _ in self._conn.notifies(timeout=timeout_s, stop_after=1))
        if woken:
            for _ in self._conn.notifies(timeout=0):
                pass
        return woken

    def close(self) -> None:
        """Close the connection (its LISTEN ends with it)."""
        try:
            self._conn.close()
        except Exception:
            logger.debug("closing the LISTEN connection failed", exc_info=True)


def run_jobs(app: Flask, max_jobs: int = 100, *, now: Clock | None = None) -> int:
    """Run the due jobs in this process (tests, demo); return how many ran.

    Commit the transaction that enqueued the jobs first: the worker uses its own session.
    """
    worker = Worker(app, worker_id=f"{default_worker_id()}:inline", now=now or utcnow)
    return worker.drain(max_jobs)


def run_until_signalled(worker: Worker) -> None:
    """Run worker in this (main) thread until SIGTERM or SIGINT, which stop it after its job."""
    stop_event = threading.Event()
    restore = install_stop_signals(stop_event)
    try:
        worker.run_forever(stop_event)
    finally:
        restore()


def install_stop_signals(stop_event: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set stop_event; return a function that restores the old handlers."""

    def on_signal(signum: int, frame: object) -> None:
        logger.info("signal %s: stopping after the current job", signum)
        stop_event.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


# -- the embedded worker thread ---------------------------------------------------------------


@dataclass
class EmbeddedWorker:
    """The one worker thread running inside a server process."""

    worker: Worker
    thread: threading.Thread
    stop_event: threading.Event

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop after its current job and wait for it."""
        self.stop_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout_s)


def job_handlers(app: Flask) -> dict[str, Handler]:
    """The kind -> handler mapping init_app() gave app (empty before); workers of app use it."""
    handlers: dict[str, Handler] = app.extensions.setdefault(_HANDLERS_KEY, {})
    return handlers


def init_app(app: Flask, handlers: Mapping[str, Handler]) -> None:
    """Give app's workers their handlers; start the embedded worker when configured.

    The embedded worker starts on the server's first request when OUTBOX_EMBEDDED_WORKER is on:
    lazily, so CLI commands (which also build the app) never run a worker thread, and each server
    process gets its own. Off under TESTING unless OUTBOX_EMBEDDED_WORKER_IN_TESTS is set.
    """
    app.extensions[_HANDLERS_KEY] = dict(handlers)  # a copy per app: tests add kinds to theirs
    if not app.config.get("OUTBOX_EMBEDDED_WORKER"):
        return
    if app.testing and not app.config.get("OUTBOX_EMBEDDED_WORKER_IN_TESTS"):
        return

    def ensure_embedded_worker() -> None:
        start_embedded_worker(app)

    app.before_request(ensure_embedded_worker)


def start_embedded_worker(app: Flask) -> EmbeddedWorker:
    """Start the app's worker thread unless it runs already; return it."""
    running = app.extensions.get(_EMBEDDED_KEY)
    if running is not None and running.thread.is_alive():
        return running  # type: ignore[no-any-return]
    with _embedded_lock:
        running = app.extensions.get(_EMBEDDED_KEY)
        if running is not None and running.thread.is_alive():
            return running  # type: ignore[no-any-return]
        worker = Worker(app, worker_id=f"{default_worker_id()}:embedded")
        stop_event = threading.Event()
        thread = threading.Thread(
            target=worker.run_forever, args=(stop_event,), name="lti-proctor-outbox", daemon=True
        )
        embedded = EmbeddedWorker(worker, thread, stop_event)
        app.extensions[_EMBEDDED_KEY] = embedded
        thread.start()
        atexit.register(embedded.stop)
        return embedded


def stop_embedded_worker(app: Flask, timeout_s: float = 10.0) -> None:
    """Stop the app's worker thread, if one runs."""
    running = app.extensions.pop(_EMBEDDED_KEY, None)
    if running is not None:
        running.stop(timeout_s)
