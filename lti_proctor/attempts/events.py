"""The service's start/finish events: store a delivery once, move the attempt forward, queue jobs.

A webhook is acknowledged as soon as its event cannot be lost, so receiving one does only that,
in Core statements built once, with no attempt object loaded: find_webhook_secret() reads the
one column the check needs; receive_provider_event() then stores the event (`INSERT ... ON
CONFLICT DO NOTHING`), moves the state with the event's ids in the conditional `UPDATE ...
RETURNING` (transitions.plan_row_move) and, when this delivery made the move, queues its jobs
(`INSERT ... SELECT`, with the workers' NOTIFY on PostgreSQL). On PostgreSQL the three are one
statement run in autocommit (a transaction by itself: no BEGIN/COMMIT round trips), so a
delivery costs two round trips; elsewhere three statements in the caller's transaction.
Applying is idempotent, so a re-delivered or replayed event is simply applied again. No Flask.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Update, bindparam, func, select
from sqlalchemy.dialects import postgresql

from lti_proctor.attempts.models import Attempt, WebhookEvent
from lti_proctor.attempts.operations import move_jobs
from lti_proctor.attempts.states import AttemptStatus
from lti_proctor.attempts.transitions import advance_row, plan_row_move, settle_row
from lti_proctor.dbtypes import insert_if_absent
from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.jobs.outbox import NOTIFY_CHANNEL, enqueue_now, job_params, job_shape, jobs_insert
from lti_proctor.proctoring.types import ProviderEvent
from lti_proctor.proctoring.webhooks import event_key


@dataclass(frozen=True)
class EventOutcome:
    """What a delivery did: stored as a new event (else a re-delivery), and moved the attempt."""

    new: bool
    moved: bool


_SECRET = select(Attempt.__table__.c.webhook_secret).where(
    Attempt.__table__.c.id == bindparam("attempt_id")
)
_EVENT_KEY = ["attempt_id", "kind", "event_key"]


def find_webhook_secret(attempt_id: str) -> str | None:
    """The webhook secret of the attempt with this public id; None when there is no such attempt.

    On PostgreSQL this is a delivery's first statement, and it puts the request's connection in
    autocommit: receive_provider_event() then writes in one statement, which is a transaction
    by itself, so no BEGIN and COMMIT round trips wrap it.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        connection = db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    else:
        connection = db.session.connection()
    secret: str | None = connection.execute(_SECRET, {"attempt_id": attempt_id}).scalar()
    return secret


def receive_provider_event(
    attempt_id: str,
    event: ProviderEvent,
    *,
    raw_body: bytes,
    content_type: str | None,
    now: datetime,
) -> EventOutcome:
    """Store a verified delivery (once per event identity) and apply it (always; idempotent).

    On PostgreSQL the event's INSERT, the move's UPDATE and its jobs' INSERT are one statement
    (data-modifying CTEs: atomic and one round trip); elsewhere three, in the caller's
    transaction. Raises AttemptStateError when the event does not fit the attempt (an event
    for a failed attempt); the stored event stays, so the caller may still commit it.
    """
    row = _event_row(attempt_id, event, raw_body=raw_body, content_type=content_type, now=now)
    if db.session.get_bind().dialect.name != "postgresql":
        new = insert_if_absent(WebhookEvent, row, unique_on=_EVENT_KEY)
        return EventOutcome(new=new, moved=apply_event(attempt_id, event, now=now))
    target, values, always, fill = _move_of(event, now=now)
    plan = plan_row_move(attempt_id, target, now=now, values=values, always=always, fill=fill)
    jobs = move_jobs(attempt_id, target)
    params = {**plan.params, **job_params(jobs), **{f"e_{k}": v for k, v in row.items()}}
    connection = db.session.connection()
    counts = connection.execute(_in_one(plan.move, job_shape(jobs)), params).one()
    new, moved = counts[0], counts[1]
    if not moved:
        settle_row(plan, connection)  # False, or AttemptStateError
    return EventOutcome(new=bool(new), moved=bool(moved))


@functools.cache
def _in_one(move: Update, jobs: tuple[bool, ...]) -> Select[Any]:
    """PostgreSQL: the event's insert, the move and its jobs as one statement (per shape); it
    gives (events added, attempts moved). The jobs are inserted once per row the move returned
    (none when it moved nothing); their RETURNING NOTIFYs the workers (a data-modifying CTE
    runs to completion, RETURNING included, whether or not the query reads it)."""
    table = WebhookEvent.__table__
    c = table.c
    event = (
        postgresql.insert(table)
        .values({k: bindparam(f"e_{k}", type_=c[k].type) for k in _EVENT_COLUMNS})
        .on_conflict_do_nothing(index_elements=_EVENT_KEY)
        .returning(c.id)
        .cte("event")
    )
    moved = move.cte("moved")
    job_id = OutboxJob.__table__.c.id
    queued = jobs_insert(jobs, after=moved).returning(job_id, func.pg_notify(NOTIFY_CHANNEL, ""))
    return select(
        select(func.count()).select_from(event).scalar_subquery(),
        select(func.count()).select_from(moved).scalar_subquery(),
    ).add_cte(queued.cte("queued"))


_EVENT_COLUMNS = (
    "attempt_id", "kind", "event_key", "body_hash", "raw_body", "content_type", "received_at",
)  # fmt: skip


def record_webhook_event(
    attempt_id: str,
    event: ProviderEvent,
    *,
    raw_body: bytes,
    content_type: str | None,
    now: datetime,
) -> bool:
    """Store a delivery as received; False when this event (attempt, kind, identity) is stored."""
    row = _event_row(attempt_id, event, raw_body=raw_body, content_type=content_type, now=now)
    return insert_if_absent(WebhookEvent, row, unique_on=_EVENT_KEY)


def _event_row(
    attempt_id: str,
    event: ProviderEvent,
    *,
    raw_body: bytes,
    content_type: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "attempt_id": attempt_id,
        "kind": event.kind,
        "event_key": event_key(event, raw_body),
        "body_hash": hashlib.sha256(raw_body).hexdigest(),
        # PostgreSQL text cannot hold NUL; the raw body is kept for people to read.
        "raw_body": raw_body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
        "content_type": (content_type or "")[:255] or None,
        "received_at": now,
    }


def apply_event(attempt_id: str, event: ProviderEvent, *, now: datetime) -> bool:
    """Keep the service's ids and move the state forward only; True when this call moved it.

    Safe to repeat: a move already made changes nothing, so a re-delivered event is simply
    applied again, and one whose effect is missing (lost to a crash, or recorded but never
    applied) takes effect now. The move's jobs are queued only by the call that made it.
    """
    target, values, always, fill = _move_of(event, now=now)
    plan = plan_row_move(attempt_id, target, now=now, values=values, always=always, fill=fill)
    if not advance_row(plan):
        return False
    enqueue_now(move_jobs(attempt_id, target))
    return True


def apply_provider_event(attempt: Attempt, event: ProviderEvent, *, now: datetime) -> bool:
    """apply_event() for a loaded attempt, which then shows what the database holds."""
    db.session.flush()
    moved = apply_event(attempt.id, event, now=now)
    db.session.refresh(attempt)
    return moved


def _move_of(
    event: ProviderEvent, *, now: datetime
) -> tuple[AttemptStatus, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The event's move (advance_row): its target, the columns written with the move, those
    written always (the service's ids) and those filled when empty (a finish that overtook its
    start says when it started)."""
    always: dict[str, Any] = {}
    if event.service_attempt_id:
        always["service_attempt_id"] = event.service_attempt_id
    if event.report_url:
        always["report_url"] = event.report_url
    fill = {"started_at": event.started_at} if event.started_at is not None else {}
    if event.kind == "start":
        return AttemptStatus.STARTED, {"started_at": event.started_at or now}, always, fill
    return AttemptStatus.FINISHED, {"finished_at": event.finished_at or now}, always, fill
