"""The grading rules of an attempt: when each status happened, the integrity score, review.

Domain core: plain values in and out; no Flask, no HTTP and no LTI import. results/scores.py
turns these rules into the AGS score the gradebook job posts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from lti_proctor.proctoring.types import Profile

RISK_MAX = 100.0
# The order of the states the gradebook is told about; each status's timestamp must be later.
STATE_ORDER = ("started", "finished", "failed", "reported")
# Moodle keeps score times in whole seconds and refuses an equal one: keep states >= 1 s apart.
MIN_STEP = timedelta(seconds=1)


def status_time(state: str, times: Mapping[str, datetime | None]) -> datetime:
    """The timestamp of the gradebook status for `state`: when the attempt entered it.

    `times` maps states to when the attempt entered them (None: never). The service's clock
    sets started/finished and ours sets reported, so each time is lifted to at least 1 s after
    the previous state's: the LMS then always ranks a later state's status above an earlier one.
    """
    if state not in STATE_ORDER:
        raise ValueError(f"unknown attempt state {state!r}")
    last: datetime | None = None
    for name in STATE_ORDER:
        moment = times.get(name)
        if moment is not None and last is not None:
            moment = max(moment, last + MIN_STEP)
        if name == state:
            if moment is None:
                raise ValueError(f"the attempt has no time for state {state!r}")
            return moment
        last = moment or last
    raise AssertionError("unreachable")  # pragma: no cover


def integrity_score(risk: float, *, score_maximum: float) -> float:
    """The default profile rule: integrity = 100 - risk, scaled to score_maximum."""
    bounded = min(max(risk, 0.0), RISK_MAX)
    return round((RISK_MAX - bounded) / RISK_MAX * score_maximum, 2)


def needs_review(risk: float | None, profile: Profile) -> bool:
    """True when the risk is unknown or at/above the profile's review threshold."""
    return risk is None or risk >= profile.review_threshold
