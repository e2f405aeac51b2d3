"""Reconciling attempts that stalled: replay stored events whose effect is missing, ask the service
about attempts stuck longer than their profile allows, and flag the rest for a person.

The contract offers one way to ask the service about an attempt: its AI report (trustexam-api.md
§4.6), which exists only once the attempt is over, so a report settles a stuck attempt (finished,
then reported) and its absence leaves the attempt flagged. No Flask: the caller passes the
service client, the profiles and a commit callback; no transaction is open while the service
answers (each attempt is read, committed, asked about, then re-read and changed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import and_, or_, select

from lti_proctor.attempts.events import apply_provider_event
from lti_proctor.attempts.models import Attempt, WebhookEvent
from lti_proctor.attempts.operations import get_attempt, mark_finished
from lti_proctor.attempts.reports import record_report
from lti_proctor.attempts.states import AttemptStatus
from lti_proctor.extensions import db
from lti_proctor.proctoring.errors import ProviderError
from lti_proctor.proctoring.types import AttemptReport, Profile
from lti_proctor.proctoring.webhooks import parse_event

Action = Literal["replayed", "reported", "flagged"]
STUCK_STATES = (AttemptStatus.STARTED, AttemptStatus.FINISHED)
REASON_CHARS = 255


class ReportSource(Protocol):
    """What reconcile needs of the proctoring client."""

    def fetch_report(self, service_attempt_id: str | int) -> AttemptReport | None:
        """The AI report, or None while there is none."""


@dataclass(frozen=True)
class ReconcileResult:
    """What reconcile did to one attempt, in words a person can act on."""

    attempt_id: str
    state_before: str
    state_after: str
    action: Action
    detail: str


def reconcile_attempts(
    *,
    client: ReportSource,
    profiles: Mapping[str, Profile],
    default_profile: Profile,
    now: datetime,
    commit: Callable[[], None],
) -> list[ReconcileResult]:
    """Replay missing effects, then settle or flag every stuck attempt; commits after each."""
    results = replay_stored_events(now=now)
    commit()
    for attempt_id in find_stuck_attempt_ids(profiles, default_profile, now=now):
        result = reconcile_attempt(
            attempt_id,
            client=client,
            profile_of=lambda name: profiles.get(name, default_profile),
            now=now,
            commit=commit,
        )
        commit()
        if result is not None:
            results.append(result)
    return results


def replay_stored_events(*, now: datetime) -> list[ReconcileResult]:
    """Apply every stored webhook event whose effect the attempt does not show (flushes)."""
    behind = or_(
        and_(WebhookEvent.kind == "finish", Attempt.state.in_(["created", "started"])),
        and_(WebhookEvent.kind == "start", Attempt.state == "created"),
    )
    rows = db.session.execute(
        select(WebhookEvent, Attempt)
        .join(Attempt, Attempt.id == WebhookEvent.attempt_id)
        .where(behind)
        .order_by(WebhookEvent.id)
    ).all()
    results = []
    for row, attempt in rows:
        before = attempt.state
        event = parse_event(row.kind, row.raw_body.encode(), row.content_type)
        if apply_provider_event(attempt, event, now=now):
            detail = f"applied the stored {row.kind} event of {row.received_at:%Y-%m-%d %H:%M}"
            results.append(ReconcileResult(attempt.id, before, attempt.state, "replayed", detail))
    return results


def find_stuck_attempt_ids(
    profiles: Mapping[str, Profile], default_profile: Profile, *, now: datetime
) -> list[str]:
    """Attempts started or finished longer ago than their profile allows, oldest first."""
    shortest = min(
        min(p.max_started_minutes, p.max_finished_minutes)
        for p in (*profiles.values(), default_profile)
    )
    candidates = db.session.scalars(
        select(Attempt)
        .where(
            Attempt.state.in_([s.value for s in STUCK_STATES]),
            Attempt.state_changed_at < now - timedelta(minutes=shortest),
        )
        .order_by(Attempt.state_changed_at)
    ).all()
    return [
        a.id
        for a in candidates
        if a.state_changed_at < now - _allowed(profiles.get(a.profile_name, default_profile), a)
    ]


def _allowed(profile: Profile, attempt: Attempt) -> timedelta:
    if attempt.status is AttemptStatus.STARTED:
        return timedelta(minutes=profile.max_started_minutes)
    return timedelta(minutes=profile.max_finished_minutes)


def reconcile_attempt(
    attempt_id: str,
    *,
    client: ReportSource,
    profile_of: Callable[[str], Profile],
    now: datetime,
    commit: Callable[[], None],
) -> ReconcileResult | None:
    """Ask the service for one stuck attempt's report; record it, or flag the attempt (flushes).

    None when the attempt is gone or moved on while the service was asked.
    """
    attempt = get_attempt(attempt_id)
    if attempt is None or attempt.status not in STUCK_STATES:
        return None
    before, service_id = attempt.status, attempt.service_attempt_id
    if not service_id:
        return _flag(attempt, now, "the service never sent its attempt id, so it cannot be asked")
    commit()  # nothing stays open while the service answers
    failure: str | None = None
    try:
        report = client.fetch_report(service_id)
    except ProviderError as exc:
        report, failure = None, f"the service did not answer ({type(exc).__name__})"
    attempt = get_attempt(attempt_id)
    if attempt is None or attempt.status is not before:
        return None
    if report is None:
        return _flag(attempt, now, failure or _no_report(attempt, now))
    if attempt.status is AttemptStatus.STARTED:
        mark_finished(attempt, now=now)  # the report proves the attempt is over
    record_report(attempt, report, profile_of(attempt.profile_name), now=now)
    detail = "the service has the AI report: the attempt is over and its report is stored"
    return ReconcileResult(attempt.id, before.value, attempt.state, "reported", detail)


def _no_report(attempt: Attempt, now: datetime) -> str:
    hours = (now - attempt.state_changed_at).total_seconds() / 3600
    if attempt.status is AttemptStatus.STARTED:
        return f"started {hours:.1f} h ago; no finish webhook and no report at the service"
    return f"finished {hours:.1f} h ago; the service still has no AI report"


def _flag(attempt: Attempt, now: datetime, reason: str) -> ReconcileResult:
    """Mark the attempt for a person (the instructor view and the CLI show the reason)."""
    attempt.flag_reason = reason[:REASON_CHARS]
    attempt.flagged_at = attempt.flagged_at or now
    db.session.flush()
    return ReconcileResult(attempt.id, attempt.state, attempt.state, "flagged", reason)
