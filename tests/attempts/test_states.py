from __future__ import annotations

import pytest

from lti_proctor.attempts.states import AttemptStateError, AttemptStatus, check_transition

C, S, F, R, X = (
    AttemptStatus.CREATED,
    AttemptStatus.STARTED,
    AttemptStatus.FINISHED,
    AttemptStatus.REPORTED,
    AttemptStatus.FAILED,
)


@pytest.mark.parametrize(
    ("current", "target"),
    [(C, S), (S, F), (C, F), (F, R), (C, X), (S, X)],
    ids=["start", "finish", "finish-before-start", "report", "fail-new", "fail-running"],
)
def test_forward_moves_change_the_state(current, target):
    assert check_transition(current, target) is True


@pytest.mark.parametrize(
    ("current", "target"),
    [(S, S), (F, F), (F, S), (R, S), (R, F), (X, X)],
    ids=[
        "dup-start",
        "dup-finish",
        "start-after-finish",
        "start-after-report",
        "late-finish",
        "dup-fail",
    ],
)
def test_repeated_or_late_events_change_nothing(current, target):
    assert check_transition(current, target) is False


@pytest.mark.parametrize(
    ("current", "target"),
    [(X, S), (X, F), (C, R), (S, R), (F, X), (R, X)],
)
def test_impossible_moves_raise(current, target):
    with pytest.raises(AttemptStateError) as info:
        check_transition(current, target)
    assert info.value.current == current and info.value.target == target


def test_plain_strings_from_the_database_are_accepted():
    assert check_transition("created", "started") is True
