"""The service's start/finish events: store a delivery once, move the attempt forward, queue jobs.

A webhook is acknowledged as soon as its event cannot be lost, so receiving one does only that,
in Core statements with no attempt object loaded: find_webhook_secret() reads the one column the
check needs; receive_provider_event() then runs, in the caller's transaction, the event's
`INSERT ... ON CONFLICT DO NOTHING`, the conditional state `UPDATE ... RETURNING` that carries
the event's ids with it (transitions.advance_row) and, when this delivery made the move, one
`INSERT ... SELECT` of its jobs (with the workers' NOTIFY on PostgreSQL). The caller commits.
Applying is idempotent, so a re-delivered or replayed event is simply applied again. No Flask.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from lti_proctor.attempts.models import Attempt, WebhookEvent
from lti_proctor.attempts.operations import move_jobs
from lti_proctor.attempts.states import AttemptStatus
from lti_proctor.attempts.transitions import advance_row
from lti_proctor.dbtypes import insert_if_absent
from lti_proctor.extensions import db
from lti_proctor.jobs.outbox import enqueue_now
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


def find_webhook_secret(attempt_id: str) -> str | None:
    """The webhook secret of the attempt with this public id; None when there is no such attempt."""
    secret: str | None = db.session.execute(_SECRET, {"attempt_id": attempt_id}).scalar()
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

    Raises AttemptStateError when the event does not fit the attempt (an event for a failed
    attempt); the stored event stays, so the caller may still commit it.
    """
    new = record_webhook_event(
        attempt_id, event, raw_body=raw_body, content_type=content_type, now=now
    )
    return EventOutcome(new=new, moved=apply_event(attempt_id, event, now=now))


def record_webhook_event(
    attempt_id: str,
    event: ProviderEvent,
    *,
    raw_body: bytes,
    content_type: str | None,
    now: datetime,
) -> bool:
    """Store a delivery as received; False when this event (attempt, kind, identity) is stored."""
    return insert_if_absent(
        WebhookEvent,
        {
            "attempt_id": attempt_id,
            "kind": event.kind,
            "event_key": event_key(event, raw_body),
            "body_hash": hashlib.sha256(raw_body).hexdigest(),
            # PostgreSQL text cannot hold NUL; the raw body is kept for people to read.
            "raw_body": raw_body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            "content_type": (content_type or "")[:255] or None,
            "received_at": now,
        },
        unique_on=["attempt_id", "kind", "event_key"],
    )


def apply_event(attempt_id: str, event: ProviderEvent, *, now: datetime) -> bool:
    """Keep the service's ids and move the state forward only; True when this call moved it.

    Safe to repeat: a move already made changes nothing, so a re-delivered event is simply
    applied again, and one whose effect is missing (lost to a crash, or recorded but never
    applied) takes effect now. The move's jobs are queued only by the call that made it.
    """
    target, values, always, fill = _move_of(event, now=now)
    if not advance_row(attempt_id, target, now=now, values=values, always=always, fill=fill):
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
