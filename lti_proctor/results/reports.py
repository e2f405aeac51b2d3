"""The `report.fetch` job: poll the service for a finished attempt's AI report, then record it.

Not ready yet is an expected answer (trustexam-api.md §4.6), not a failure, so it does not spend
the job's retry budget: the job succeeds and, in the same transaction, enqueues the next poll with
its run_at (30 s, 1 m, 2 m, 5 m, 10 m, 15 m, then every 30 m) until 24 h have passed since the
first poll; then the job is dead with a last_error that says so. Outages of the service (timeouts,
5xx, 429) raise ProviderUnavailableError and use the worker's ordinary retries within one poll.
Once ready: the report is stored, the attempt moves to reported and the final gradebook status is
queued, all in the job's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from lti_proctor.attempts.reports import record_report
from lti_proctor.attempts.states import AttemptStateError, AttemptStatus
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.jobs.retry import JobCancelledError, PermanentJobError
from lti_proctor.proctoring import client as proctoring_client
from lti_proctor.results.gradebook import attempt_profile, load_attempt
from lti_proctor.timeutil import utcnow

log = logging.getLogger(__name__)

KIND = "report.fetch"
POLL_DELAYS_S = (30, 60, 120, 300, 600, 900, 1800)  # the last one repeats
DEFAULT_MAX_WAIT_S = 24 * 3600


def poll_delay_s(polls_done: int) -> float:
    """Seconds to wait before the next poll, after `polls_done` polls found no report."""
    index = min(max(polls_done, 1), len(POLL_DELAYS_S)) - 1
    return float(POLL_DELAYS_S[index])


def fetch_report(payload: dict[str, Any]) -> None:
    """Fetch the AI report of payload["attempt_id"]; record it, or schedule the next poll."""
    attempt = load_attempt(payload)
    if attempt.status is AttemptStatus.REPORTED:
        log.info("attempt %s already has its report", attempt.id)
        return
    if attempt.status is not AttemptStatus.FINISHED:
        raise JobCancelledError(f"attempt {attempt.id} is {attempt.state}: no report to fetch")
    if not attempt.service_attempt_id:
        raise PermanentJobError(
            f"attempt {attempt.id} has no service attempt id (the finish webhook carried none), "
            "so its AI report cannot be asked for"
        )
    now = utcnow()
    client = proctoring_client.get_client(current_app)
    report = client.fetch_report(attempt.service_attempt_id)
    if report is None:
        _poll_again(payload, attempt.id, attempt.service_attempt_id, now=now)
        return
    try:
        record_report(attempt, report, attempt_profile(attempt), now=now)
    except AttemptStateError as exc:  # moved on since we loaded it (e.g. failed)
        raise JobCancelledError(f"attempt {attempt.id}: {exc}") from exc
    log.info("attempt %s: AI report stored (risk %s)", attempt.id, report.risk_score)


def _poll_again(
    payload: dict[str, Any], attempt_id: str, service_id: str, *, now: datetime
) -> None:
    """Queue the next poll, or give up (dead job) once the wait is over."""
    polls = _int(payload.get("poll"), 1)
    since = _time(payload.get("since")) or now
    max_wait = timedelta(seconds=float(current_app.config.get("PROCTOR_REPORT_MAX_WAIT_S") or 0))
    deadline = since + (max_wait or timedelta(seconds=DEFAULT_MAX_WAIT_S))
    if now >= deadline:
        hours = (now - since).total_seconds() / 3600
        raise PermanentJobError(
            f"the AI report of attempt {attempt_id} (service attempt {service_id}) was still not "
            f"ready after {polls} polls over {hours:.1f} h; gave up (retry the job to look again)"
        )
    run_at = min(now + timedelta(seconds=poll_delay_s(polls)), deadline)
    enqueue(
        KIND,
        {"attempt_id": attempt_id, "poll": polls + 1, "since": since.isoformat()},
        dedupe_key=f"report:{attempt_id}",
        run_at=run_at,
    )
    log.info(
        "attempt %s: AI report not ready (poll %s); next poll at %s", attempt_id, polls, run_at
    )


def _int(value: object, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
