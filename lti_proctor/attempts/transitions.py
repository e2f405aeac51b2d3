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

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Update, bindparam, func, select, update

from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.states import SOURCES, AttemptStateError, AttemptStatus, check_transition
from lti_proctor.extensions import db

_TABLE = Attempt.__table__


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


@dataclass(frozen=True)
class RowMove:
    """advance_row()'s statements for one call, with their parameters: the conditional move
    (`UPDATE ... RETURNING id`), and what runs when it moved nothing (`settle`: the state)."""

    target: AttemptStatus
    move: Update
    settle: Update | Select[Any]
    params: dict[str, Any]


def plan_row_move(
    attempt_id: str,
    target: AttemptStatus,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
    always: Mapping[str, Any] | None = None,
    fill: Mapping[str, Any] | None = None,
) -> RowMove:
    """advance_row()'s statements, built once per shape (the set of columns written).

    `values` are written with the move only; `always` whether or not the state moves; `fill`
    whether or not it moves, but only into a column that is still empty (NULL); with the move,
    `values` win.
    """
    values, always, fill = dict(values or {}), dict(always or {}), dict(fill or {})
    params = {"attempt_id": attempt_id, "now": now}
    params.update({f"v_{k}": v for k, v in values.items()})
    params.update({f"a_{k}": v for k, v in always.items()})
    params.update({f"f_{k}": v for k, v in fill.items()})
    later = tuple(sorted(always)), tuple(sorted(k for k in fill if k not in always))
    move = _move_statement(
        target,
        tuple(sorted(values)),
        tuple(k for k in later[0] if k not in values),
        tuple(k for k in later[1] if k not in values),
    )
    return RowMove(target, move, _settle_statement(*later), params)


def advance_row(plan: RowMove) -> bool:
    """advance() for an attempt that is not loaded (plan_row_move): True only when this call
    moved it. The common case is one `UPDATE ... RETURNING`; when it moved nothing, a second
    statement writes `always` and `fill` (or reads the state) and the state it finds decides as
    in advance(): a repeat or a late event gives False, a forbidden move raises
    AttemptStateError. A row that is gone moves nothing (False). Runs on the session's
    connection.
    """
    db.session.flush()  # the caller's pending changes first: this bypasses the ORM
    connection = db.session.connection()
    if connection.execute(plan.move, plan.params).first() is not None:
        return True
    return settle_row(plan, connection)


def settle_row(plan: RowMove, connection: Connection) -> bool:
    """After plan.move moved nothing: write what is always written and decide from the state
    found (False for a repeat, a late event or a row that is gone; AttemptStateError)."""
    state: str | None = connection.execute(plan.settle, plan.params).scalar()
    return state is not None and _settled(state, plan.target)


def _written(always: tuple[str, ...], fill: tuple[str, ...]) -> dict[str, Any]:
    c = _TABLE.c
    sets: dict[str, Any] = {k: bindparam(f"a_{k}", type_=c[k].type) for k in always}
    sets.update({k: func.coalesce(c[k], bindparam(f"f_{k}", type_=c[k].type)) for k in fill})
    return sets


@functools.cache
def _move_statement(
    target: AttemptStatus, values: tuple[str, ...], always: tuple[str, ...], fill: tuple[str, ...]
) -> Update:
    """The conditional UPDATE of a move to target writing these columns (built once each)."""
    c = _TABLE.c
    sets = {
        "state": target.value,
        "state_changed_at": bindparam("now", type_=c.state_changed_at.type),
        "flag_reason": None,  # a move answers any "stuck" flag reconcile put on the attempt
        "flagged_at": None,
        **_written(always, fill),
        **{k: bindparam(f"v_{k}", type_=c[k].type) for k in values},
    }
    stmt: Update = (
        update(_TABLE)
        .where(c.id == bindparam("attempt_id"), c.state.in_([s.value for s in SOURCES[target]]))
        .values(sets)
        .returning(c.id)
    )
    return stmt


@functools.cache
def _settle_statement(always: tuple[str, ...], fill: tuple[str, ...]) -> Update | Select[Any]:
    """After no move: write always and fill and give the state, or only read it."""
    c = _TABLE.c
    if not (always or fill):
        return select(c.state).where(c.id == bindparam("attempt_id"))
    stmt: Update = (
        update(_TABLE)
        .where(c.id == bindparam("attempt_id"))
        .values(_written(always, fill))
        .returning(c.state)
    )
    return stmt


def _settled(state: str, target: AttemptStatus) -> bool:
    """False after a conditional UPDATE that moved nothing, when the state it left is one the
    move may skip (a repeat, a late event); AttemptStateError when the move is forbidden."""
    if check_transition(state, target):  # raises for a forbidden move
        # The row left every source state between the UPDATE and the read; states only move
        # forward, so this can only mean the row is gone or changed outside the tool.
        raise AttemptStateError(AttemptStatus(state), target)
    return False
