"""The course roster beside an exam's attempts: every learner NRPS lists, with their state.

Read when an instructor opens the exam's page, from the memberships URL the launches carried
(Exam.memberships_url), with the tool's service token; cached briefly in the shared store so
paging through the instructor view does not re-read a large course each time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from flask import current_app
from sqlalchemy import select

from lti_proctor.attempts.models import Attempt
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner
from lti_proctor.lti.keys import get_signing_key
from lti_proctor.lti.nrps import Member, NrpsClient
from lti_proctor.lti.registrations import Platform
from lti_proctor.lti.service_http import AgsError
from lti_proctor.lti.service_tokens import PlatformCredentials
from lti_proctor.store import get_store

log = logging.getLogger(__name__)

CACHE_S = 120
CACHE_KEY = "roster:"
NOT_STARTED = "not_started"


@dataclass(frozen=True)
class RosterRow:
    """One learner of the course and where they are with this exam."""

    name: str
    email: str | None
    state: str  # an attempt state of their latest attempt, or "not_started"
    attempts: int


@dataclass(frozen=True)
class Roster:
    """The roster, or why there is none: unavailable (no NRPS claim) or failed (LMS error)."""

    available: bool
    rows: tuple[RosterRow, ...] = ()
    failed: bool = False


def find_roster(exam: Exam) -> Roster:
    """Every learner of the exam's course with their state; unavailable without the NRPS claim."""
    if not exam.memberships_url:
        return Roster(available=False)
    try:
        members = _members(exam)
    except AgsError as exc:
        log.warning("exam %s: roster not read: %s", exam.id, exc)
        return Roster(available=True, failed=True)
    states = _states_by_sub(exam.id)
    rows = [
        RosterRow(m.display_name, m.email, *states.get(m.user_id, (NOT_STARTED, 0)))
        for m in members
        if m.is_learner
    ]
    return Roster(available=True, rows=tuple(sorted(rows, key=lambda r: r.name.casefold())))


def _members(exam: Exam) -> list[Member]:
    store = get_store()
    key = f"{CACHE_KEY}{exam.id}"
    cached = store.get(key)
    if cached is not None:
        return [Member(**{**m, "roles": tuple(m["roles"])}) for m in json.loads(cached)]
    platform = db.session.get(Platform, exam.platform_id)
    if platform is None or exam.memberships_url is None:
        return []
    client = NrpsClient(
        PlatformCredentials(
            id=str(platform.id),
            client_id=platform.client_id,
            token_url=platform.auth_token_url,
            auth_audience=platform.auth_audience,
        ),
        store=store,
        signer=get_signing_key,
        timeout=float(current_app.config.get("LTI_HTTP_TIMEOUT_S") or 10),
    )
    members = client.members(exam.memberships_url)
    store.set(key, json.dumps([asdict(m) for m in members]), CACHE_S)
    return members


def _states_by_sub(exam_id: int) -> dict[str, tuple[str, int]]:
    """sub -> (state of the latest attempt, number of attempts) for the exam."""
    rows = db.session.execute(
        select(Learner.sub, Attempt.state, Attempt.number)
        .join(Attempt, Attempt.learner_id == Learner.id)
        .where(Attempt.exam_id == exam_id)
        .order_by(Attempt.number)
    ).all()
    found: dict[str, tuple[str, int]] = {}
    for sub, state, number in rows:
        found[sub] = (state, number)
    return found
