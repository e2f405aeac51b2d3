"""Moving an attempt's state: one conditional UPDATE per move, forward only, decided by the DB.

Webhooks for one attempt may be handled at the same moment by several threads or processes. A
read-change-write of the state lets the slower writer put back an earlier state (a finish lost
to its own start), so every move is `UPDATE attempt ... WHERE id = :id AND state IN (sources)`:
exactly one transaction wins a move, on SQLite (one writer at a time) and on PostgreSQL (which
re-checks the WHERE on the row a concurrent transaction committed). Callers enqueue a move's
side effects only when advance() says that this call made it. advance() moves a loaded attempt
object and refreshes it; advance_row() moves a row by id with no object (the webhook's hot path).
No Flask; flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.states import SOURCES, AttemptStateError, AttemptStatus, check_transition
from lti_proctor.extensions import db


def advance(
    attempt: Attempt,
    target: AttemptStatus,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move the attempt to target, setting values with it; True only when this call moved it.

    A repeat or a late (backward) event returns False and changes nothing. A move the state
    table forbids (out of failed, reported before finished) raises AttemptStateError. The
    attempt object is refreshed, so it shows the state the database now holds.
    """
    db.session.flush()  # the caller's pending changes first: the refresh below reloads the row
    moved = db.session.execute(
        update(Attempt)
        .where(Attempt.id == attempt.id, Attempt.state.in_([s.value for s in SOURCES[target]]))
        .values(
            state=target.value,
            state_changed_at=now,
            flag_reason=None,  # a move answers any "stuck" flag reconcile put on the attempt
            flagged_at=None,
            **(values or {}),
        )
        .returning(Attempt.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.refresh(attempt)
    if moved is not None:
        return True
    return _settled(attempt.state, target)


def advance_row(
    attempt_id: str,
    target: AttemptStatus,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
    always: Mapping[str, Any] | None = None,
) -> bool:
    """advance() for an attempt that is not loaded: True only when this call moved it.

    `values` are written with the move only; `always` (column values or SQL expressions) are
    written whether or not the state moves. The common case is one `UPDATE ... RETURNING`;
    when it moved nothing, a second statement writes `always` (or reads the state) and the
    state it finds decides as in advance(): a repeat or a late event gives False, a forbidden
    move raises AttemptStateError. A row that is gone moves nothing (False).
    """
    table = Attempt.__table__
    moved = db.session.execute(
        update(table)
        .where(table.c.id == attempt_id, table.c.state.in_([s.value for s in SOURCES[target]]))
        .values(
            state=target.value,
            state_changed_at=now,
            flag_reason=None,
            flagged_at=None,
            **{**(always or {}), **(values or {})},
        )
        .returning(table.c.id)
    ).first()
    if moved is not None:
        return True
    if always:
        state = db.session.scalar(
            update(table).where(table.c.id == attempt_id).values(always).returning(table.c.state)
        )
    else:
        state = db.session.scalar(select(table.c.state).where(table.c.id == attempt_id))
    return state is not None and _settled(state, target)


def _settled(state: str, target: AttemptStatus) -> bool:
    """False after a conditional UPDATE that moved nothing, when the state it left is one the
    move may skip (a repeat, a late event); AttemptStateError when the move is forbidden."""
    if check_transition(state, target):  # raises for a forbidden move
        # The row left every source state between the UPDATE and the read; states only move
        # forward, so this can only mean the row is gone or changed outside the tool.
        raise AttemptStateError(AttemptStatus(state), target)
    return False
