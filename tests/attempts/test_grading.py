from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lti_proctor.attempts.grading import integrity_score, status_time

AT = datetime(2030, 5, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("risk", "expected"), [(0, 100.0), (100, 0.0), (-5, 100.0), (140, 0.0), (33.333, 66.67)]
)
def test_integrity_is_100_minus_risk_within_bounds(risk: float, expected: float) -> None:
    assert integrity_score(risk, score_maximum=100) == expected


# -- status_time: when each gradebook status happened ------------------------------------------


def _t(minutes: float) -> datetime:
    return AT + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("state", "times", "expected"),
    [
        ("started", {"started": _t(0), "finished": _t(70)}, _t(0)),
        ("finished", {"started": _t(0), "finished": _t(70)}, _t(70)),
        ("reported", {"started": _t(0), "finished": _t(70), "reported": _t(75)}, _t(75)),
        ("finished", {"started": None, "finished": _t(70)}, _t(70)),
        # The service's clock ran ahead of ours: the report is lifted 1 s past the finish.
        ("reported", {"finished": _t(70), "reported": _t(69)}, _t(70) + timedelta(seconds=1)),
        # Start and finish in the same second: Moodle would refuse an equal time.
        ("finished", {"started": _t(0), "finished": _t(0)}, _t(0) + timedelta(seconds=1)),
    ],
    ids=["started", "finished", "reported", "finish-without-start", "skewed", "same-second"],
)
def test_status_time_is_the_state_time_and_grows_with_each_state(
    state: str, times: dict[str, datetime | None], expected: datetime
) -> None:
    assert status_time(state, times) == expected


@pytest.mark.parametrize(("state", "times"), [("started", {}), ("paused", {"paused": AT})])
def test_status_time_without_a_time_for_the_state_is_an_error(
    state: str, times: dict[str, datetime | None]
) -> None:
    with pytest.raises(ValueError):
        status_time(state, times)
