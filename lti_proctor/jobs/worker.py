"""The outbox worker: claims due jobs one at a time, runs their handlers, records each outcome.

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
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import ColumnElement, and_, or_, select, update

from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus, OutboxJob
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
_embedded_lock = threading.Lock()


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

    # -- the loop ---------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim one due job and run it; False when no job was due."""
        with self.app.app_context():
            job = self.claim()
            if job is None:
                return False
            self.run(job)
            return True

    def drain(self, max_jobs: int = 100) -> int:
        """Run due jobs until none is left or max_jobs ran; return how many ran."""
        count = 0
        while count < max_jobs and self.run_once():
            count += 1
        return count

    def run_forever(self, stop_event: threading.Event) -> None:
        """Run jobs until stop_event is set; a set event stops the loop after the current job."""
        logger.info("outbox worker %s started", self.worker_id)
        failures = 0
        while not stop_event.is_set():
            try:
                ran = self.run_once()
                failures = 0
            except Exception:
                # The database is down or the claim failed: never let the loop die, wait longer.
                failures += 1
                logger.exception("outbox worker %s could not poll the outbox", self.worker_id)
                ran = False
            if not ran:
                stop_event.wait(self._idle_wait_s(failures))
        logger.info("outbox worker %s stopped", self.worker_id)

    def _idle_wait_s(self, failures: int) -> float:
        if not failures:
            return self.poll_interval_s
        return min(self.poll_interval_s * 2.0 ** min(failures, 10), _IDLE_BACKOFF_MAX_S)

    # -- claiming (call inside an app context; each call commits) ----------------------------

    def claim(self) -> ClaimedJob | None:
        """Claim the next due job for this worker and commit the claim; None when none is due."""
        conflicts = 0
        while conflicts < _CLAIM_CONFLICTS_MAX:
            now = self.now()
            row = db.session.execute(self._candidate(now)).first()
            if row is None:
                db.session.rollback()
                return None
            claimed, progressed = self._take(row, now)
            db.session.commit()
            if claimed is not None:
                return claimed
            if not progressed:
                conflicts += 1
        return None

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            and_(OutboxJob.status == JobStatus.TODO.value, OutboxJob.scheduled_at <= now),
            and_(OutboxJob.status == JobStatus.DOING.value, OutboxJob.lease_expires_at <= now),
        )

    def _candidate(self, now: datetime) -> Any:
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
            .limit(1)
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
