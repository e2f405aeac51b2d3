"""Operations on attempts: start or resume one at launch; mark its moves and queue their jobs.

Plain functions with explicit inputs (the clock, the launch's values); they flush, never commit,
and every state change enqueues its outbox jobs in the same transaction. No Flask here. Starting
an attempt waits on the proctoring service, so it is split into phases the caller commits
between (begin_start, then the upsert, then complete_start or abandon_start): no transaction
stays open during the call.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.orm import load_only
from sqlalchemy.orm.attributes import set_committed_value

from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.states import OPEN, USED, AttemptStatus
from lti_proctor.attempts.transitions import advance
from lti_proctor.dbtypes import insert_returning
from lti_proctor.exam_settings import seal_code, unseal_code
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner
from lti_proctor.jobs.outbox import NewJob, enqueue_now
from lti_proctor.proctoring.errors import ProviderUnavailableError
from lti_proctor.proctoring.types import Profile, SessionRequest, SessionResult

DEFAULT_MAX_ATTEMPTS = 1
_RACE_RETRIES = 3


@dataclass(frozen=True)
class SessionLinks:
    """The tool's own URLs the service is told about (built by web/, which knows BASE_URL)."""

    webhook_start_url: str
    webhook_finish_url: str
    external_url: str | None = None
    exit_url: str | None = None


@dataclass(frozen=True)
class StartOutcome:
    """What a start did: a new or resumed open attempt, or no attempt left ("finished")."""

    status: Literal["new", "resumed", "finished"]
    attempt: Attempt | None  # the open attempt; for "finished" the latest used one
    attempts_used: int
    max_attempts: int


def parse_max_attempts(value: str | None) -> int:
    """The custom parameter max_attempts as a count >= 1; absent or unreadable gives the default."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return DEFAULT_MAX_ATTEMPTS
    return max(number, 1)


@dataclass(frozen=True)
class PendingStart:
    """Phase 1's answer: the outcome so far and the session upsert still to send (plain values).

    `session` is None when there is nothing to send ("finished"). It is built before phase 1
    commits, so sending it reads nothing from the database.
    """

    outcome: StartOutcome
    session: SessionRequest | None
    exam_url: str | None
    access_code: str | None


def begin_start(
    *,
    exam: Exam,
    learner: Learner,
    profile: Profile,
    links: SessionLinks,
    now: datetime,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    exam_url: str | None = None,
    access_code: str | None = None,
    language: str | None = None,
) -> PendingStart:
    """Phase 1 of a launch: find the learner's open attempt, or insert a new one if allowed.

    A launch waits on the proctoring service, so it runs as three short transactions rather
    than one: no database transaction (SQLite's write lock, a PostgreSQL connection and its row
    locks) may stay open while the service answers. The caller commits after each phase:
      1. begin_start() (commit), 2. client.upsert_session(pending.session) with nothing open,
      3. complete_start() (commit) - or abandon_start() (commit) when the upsert failed.
    Two launches at once open one attempt: the unique (exam, learner, number) key makes the
    slower one wait for the faster's commit and then resume that attempt, which may still have
    no token; it sends its own upsert, which the service treats idempotently.
    """
    for _ in range(_RACE_RETRIES):
        history = _attempts_of(exam.id, learner.id)  # newest first; one read serves every check
        used = sum(1 for a in history if a.state in USED)
        attempt = next((a for a in history if a.state in OPEN), None)
        if attempt is not None:
            outcome = StartOutcome("resumed", attempt, used, max_attempts)
            break
        if used >= max_attempts:
            finished = StartOutcome("finished", history[0] if history else None, used, max_attempts)
            return PendingStart(finished, None, exam_url, access_code)
        number = (history[0].number if history else 0) + 1
        attempt = _insert_attempt(exam, learner, profile, number=number, now=now, language=language)
        if attempt is not None:
            outcome = StartOutcome("new", attempt, used, max_attempts)
            break
        # another launch inserted that number first: resume its attempt
    else:
        raise RuntimeError("could not open or find the attempt after concurrent launches")
    request = session_request(attempt, exam, learner, profile, links)
    return PendingStart(outcome, request, exam_url, access_code)


def complete_start(pending: PendingStart, result: SessionResult, *, now: datetime) -> Attempt:
    """Phase 3: keep the service's fresh token and the launch's exam content; the attempt.

    One UPDATE ... RETURNING writes the attempt and brings its current row back, so it is never
    read again: the profile is taken only while the row is still created (a start webhook may
    have come meanwhile). When the row is gone, a concurrent launch whose upsert failed removed
    it; that is the service's failure too, so ProviderUnavailableError is raised.
    """
    if pending.session is None:
        raise ValueError("a finished start has no session to complete")
    profile = pending.session.profile
    params = {
        "p_id": pending.session.attempt_id,
        "p_exam_url": pending.exam_url or None,
        "p_access_code": seal_code(pending.access_code),
        "p_profile_name": profile.name,
        "p_start_proof": profile.start_proof,
        "p_token": result.token,
        "p_token_refreshed_at": now,
        "p_session_response": dict(result.raw),
        # an answer without one of these keeps what we knew (NULL keeps the column's value)
        "p_report_url": result.report_url or None,
        "p_session_url": result.session_url or None,
        "p_service_session_id": result.session_id or None,
    }
    row = db.session.execute(_complete_statement(), params).first()
    if row is None:
        raise ProviderUnavailableError("the attempt was removed by a launch whose upsert failed")
    attempt = _held(pending)
    for column in Attempt.__table__.columns:
        set_committed_value(attempt, column.key, row._mapping[column])
    return attempt


@functools.cache
def _complete_statement() -> Any:
    """complete_start's UPDATE ... RETURNING, built once (every launch runs it).

    The profile is taken only while the attempt is still created; the service's report and
    session links and id only when the answer has them.
    """
    table = Attempt.__table__
    created = table.c.state == AttemptStatus.CREATED.value

    def param(name: str) -> Any:
        return bindparam("p_" + name, type_=table.c[name].type)

    def unless_created(name: str) -> Any:
        return case((created, param(name)), else_=table.c[name])

    def when_given(name: str) -> Any:
        return func.coalesce(param(name), table.c[name])

    return (
        update(table)
        .where(table.c.id == bindparam("p_id", type_=table.c.id.type))
        .values(
            exam_url=param("exam_url"),
            access_code=param("access_code"),
            profile_name=unless_created("profile_name"),
            start_proof=unless_created("start_proof"),
            token=param("token"),
            token_refreshed_at=param("token_refreshed_at"),
            session_response=param("session_response"),
            report_url=when_given("report_url"),
            session_url=when_given("session_url"),
            service_session_id=when_given("service_session_id"),
        )
        .returning(*table.columns)
    )


def _held(pending: PendingStart) -> Attempt:
    """The phase-1 attempt object of this session (or the row, if the session lost it)."""
    attempt = pending.outcome.attempt
    assert pending.session is not None and attempt is not None
    if attempt.id != pending.session.attempt_id:  # pragma: no cover - built together
        raise ValueError("the pending start's attempt and session disagree")
    return attempt


def abandon_start(pending: PendingStart) -> None:
    """After a failed upsert: remove the attempt this launch inserted, unless it got a token since.

    A resumed attempt stays exactly as it was (phase 1 changed nothing on it).
    """
    if pending.outcome.status != "new" or pending.session is None:
        return
    table = Attempt.__table__
    gone = db.session.execute(  # decided in the database: another launch may have a token now
        delete(table)
        .where(table.c.id == pending.session.attempt_id, table.c.token.is_(None))
        .returning(table.c.id)
    ).first()
    attempt = pending.outcome.attempt
    if gone is not None and attempt is not None and attempt in db.session:
        db.session.expunge(attempt)  # no half-made attempt stays behind, here either


def get_attempt(attempt_id: str) -> Attempt | None:
    """The attempt with this public id, or None."""
    return db.session.get(Attempt, attempt_id) if attempt_id else None


@functools.cache
def _history_query() -> Any:
    """The learner's attempts at an exam, newest first: built once, run at every launch.

    Only what a start reads: the rest (the sealed token, the service's answer, the timestamps)
    is refreshed by complete_start's RETURNING, or loaded if something asks for it.
    """
    return (
        select(Attempt)
        .options(
            load_only(
                Attempt.id,
                Attempt.exam_id,
                Attempt.learner_id,
                Attempt.number,
                Attempt.state,
                Attempt.profile_name,
                Attempt.start_proof,
                Attempt.webhook_secret,
            )
        )
        .where(
            Attempt.exam_id == bindparam("exam_id"), Attempt.learner_id == bindparam("learner_id")
        )
        .order_by(Attempt.number.desc())
    )


def _attempts_of(exam_id: int, learner_id: int) -> list[Attempt]:
    """The learner's attempts at the exam, newest first (a handful at most)."""
    return list(
        db.session.scalars(_history_query(), {"exam_id": exam_id, "learner_id": learner_id})
    )


def _insert_attempt(
    exam: Exam,
    learner: Learner,
    profile: Profile,
    *,
    number: int,
    now: datetime,
    language: str | None = None,
) -> Attempt | None:
    """Insert attempt number; None when a concurrent launch took that number first."""
    attempt_id = str(uuid.uuid4())
    added = insert_returning(
        Attempt,
        {
            "id": attempt_id,
            "exam_id": exam.id,
            "learner_id": learner.id,
            "number": number,
            "state": AttemptStatus.CREATED.value,
            "profile_name": profile.name,
            "start_proof": profile.start_proof,
            "webhook_secret": secrets.token_urlsafe(32),
            "created_at": now,
            "state_changed_at": now,
            "language": (language or "")[:16] or None,
        },
        unique_on=["exam_id", "learner_id", "number"],
    )
    return added  # type: ignore[no-any-return]


def session_request(
    attempt: Attempt, exam: Exam, learner: Learner, profile: Profile, links: SessionLinks
) -> SessionRequest:
    """The upsert request of one attempt: hashed ids only, never the LMS user id."""
    return SessionRequest(
        assignment_external_id=exam.external_id,
        assignment_name=exam.display_name,
        student_external_id=learner.external_id,
        student_name=learner.display_name,
        attempt_id=attempt.id,
        profile=profile,
        webhook_start_url=links.webhook_start_url,
        webhook_finish_url=links.webhook_finish_url,
        webhook_secret=attempt.webhook_secret,
        external_url=links.external_url,
        exit_url=links.exit_url,
        student_firstname=learner.given_name,
        student_lastname=learner.family_name,
        student_email=learner.email,
        group_external_id=exam.group_external_id,
        group_name=exam.context_title,
    )


def move_jobs(attempt_id: str, target: AttemptStatus) -> tuple[NewJob, ...]:
    """What a move to target queues: the gradebook status, and after a finish the report fetch."""
    status = NewJob(
        "ags.publish_status",
        {"attempt_id": attempt_id, "state": target.value},
        dedupe_key=f"ags:{attempt_id}:{target.value}",
    )
    if target == AttemptStatus.FINISHED:
        report = {"attempt_id": attempt_id}
        return status, NewJob("report.fetch", report, dedupe_key=f"report:{attempt_id}")
    return (status,)


def mark_started(attempt: Attempt, *, now: datetime, started_at: datetime | None = None) -> bool:
    """Record that the attempt started and queue the gradebook status; False if nothing changed.

    The move is one conditional UPDATE (attempts/transitions.py): when a finish got there first,
    nothing changes and nothing is queued.
    """
    if not advance(
        attempt, AttemptStatus.STARTED, now=now, values={"started_at": started_at or now}
    ):
        return False
    enqueue_now(move_jobs(attempt.id, AttemptStatus.STARTED))
    return True


def mark_finished(attempt: Attempt, *, now: datetime, finished_at: datetime | None = None) -> bool:
    """Record the finish, queue the gradebook status and the report fetch; False if no change."""
    values = {"finished_at": finished_at or now}
    if not advance(attempt, AttemptStatus.FINISHED, now=now, values=values):
        return False
    enqueue_now(move_jobs(attempt.id, AttemptStatus.FINISHED))
    return True


def mark_reported(attempt: Attempt, *, now: datetime) -> bool:
    """Record that the AI report is in and queue the final gradebook status; False if no change.

    Raises AttemptStateError unless the attempt is finished (or already reported).
    """
    if not advance(attempt, AttemptStatus.REPORTED, now=now, values={"reported_at": now}):
        return False
    enqueue_now(move_jobs(attempt.id, AttemptStatus.REPORTED))
    return True


def record_submitted(attempt: Attempt, *, now: datetime) -> None:
    """Note that the page says the student submitted; the finish webhook stays the authority."""
    if attempt.submitted_at is None:
        attempt.submitted_at = now
        db.session.flush()


def attempt_summary(attempt: Attempt) -> Mapping[str, object]:
    """What the student's page may know about the attempt (never the report or the secret)."""
    return {
        "state": attempt.state,
        "number": attempt.number,
        "started": attempt.status == AttemptStatus.STARTED,
        "finished": attempt.status
        in (AttemptStatus.FINISHED, AttemptStatus.REPORTED, AttemptStatus.FAILED),
        "start_proof": attempt.start_proof,
        "submitted": attempt.submitted_at is not None,
    }


class StartProofError(Exception):
    """This attempt counts only the service's start webhook as proof that it started."""


def record_sdk_started(attempt: Attempt, *, now: datetime) -> bool:
    """The page reports that the SDK's start() resolved; it counts only for start_proof "sdk"."""
    if attempt.start_proof != "sdk":
        raise StartProofError()
    return mark_started(attempt, now=now)


def revealed_content(attempt: Attempt) -> Mapping[str, str | None] | None:
    """The exam URL and access code, once the attempt has started; None before (and after)."""
    if attempt.status != AttemptStatus.STARTED:
        return None
    return {"exam_url": attempt.exam_url, "access_code": unseal_code(attempt.access_code)}
