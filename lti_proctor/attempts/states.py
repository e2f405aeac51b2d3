"""The attempt's life: its statuses and the only moves between them (forward only).

Webhooks arrive at least once and in any order (trustexam-api.md U17), so a repeated or late
event is not an error: it simply changes nothing. Only a move that makes no sense raises.
"""

from __future__ import annotations

from enum import StrEnum


class AttemptStatus(StrEnum):
    """created -> started -> finished -> reported; created/started -> failed."""

    CREATED = "created"
    STARTED = "started"
    FINISHED = "finished"
    REPORTED = "reported"
    FAILED = "failed"


class AttemptStateError(Exception):
    """The attempt cannot make this move."""

    def __init__(self, current: AttemptStatus, target: AttemptStatus) -> None:
        super().__init__(f"attempt cannot move from {current.value} to {target.value}")
        self.current, self.target = current, target


# A finish may arrive before its start (created -> finished): the service's word is enough.
ALLOWED: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    AttemptStatus.CREATED: frozenset(
        {AttemptStatus.STARTED, AttemptStatus.FINISHED, AttemptStatus.FAILED}
    ),
    AttemptStatus.STARTED: frozenset({AttemptStatus.FINISHED, AttemptStatus.FAILED}),
    AttemptStatus.FINISHED: frozenset({AttemptStatus.REPORTED}),
    AttemptStatus.REPORTED: frozenset(),
    AttemptStatus.FAILED: frozenset(),
}
_RANK = {
    AttemptStatus.CREATED: 0,
    AttemptStatus.STARTED: 1,
    AttemptStatus.FINISHED: 2,
    AttemptStatus.REPORTED: 3,
}
OPEN = frozenset({AttemptStatus.CREATED, AttemptStatus.STARTED})
# For each status, the statuses it may be entered from: the WHERE of the conditional UPDATE that
# moves an attempt (attempts/transitions.py), so the database, not a stale read, decides.
SOURCES: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    target: frozenset(s for s, targets in ALLOWED.items() if target in targets)
    for target in AttemptStatus
}
USED = frozenset({AttemptStatus.FINISHED, AttemptStatus.REPORTED})


def check_transition(current: AttemptStatus | str, target: AttemptStatus | str) -> bool:
    """True when the attempt should move; False for a repeat or a late (backward) event.

    Raises AttemptStateError for a move the table does not allow (out of failed, or skipping
    finished on the way to reported).
    """
    current, target = AttemptStatus(current), AttemptStatus(target)
    if current == target:
        return False
    if target in ALLOWED[current]:
        return True
    if current in _RANK and target in _RANK and _RANK[target] < _RANK[current]:
        return False
    raise AttemptStateError(current, target)
