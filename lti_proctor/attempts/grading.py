"""Gradebook status of an attempt: the AGS progress values, score and comment for each state.

Domain core: plain values in, a plain `GradebookStatus` out; no Flask, no HTTP and no LTI import.
The gradebook job turns a GradebookStatus into an `lti.ags.Score` and posts it.

Ordering: the caller passes `timestamp` = the time the attempt entered `state` (its state-change
time, never the time the job runs). The LMS ignores a score older than the one it holds (AGS 2.0
Score service; Moodle answers 409, Canvas 400), so a late or retried job for an older state can
never overwrite a newer status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from lti_proctor.proctoring.types import AttemptReport, Profile

ActivityProgressValue = Literal["Initialized", "Started", "InProgress", "Submitted", "Completed"]
GradingProgressValue = Literal["NotReady", "Failed", "Pending", "PendingManual", "FullyGraded"]

RISK_MAX = 100.0
# The order of the states the gradebook is told about; each status's timestamp must be later.
STATE_ORDER = ("started", "finished", "failed", "reported")
# Moodle keeps score times in whole seconds and refuses an equal one: keep states >= 1 s apart.
MIN_STEP = timedelta(seconds=1)


@dataclass(frozen=True)
class GradebookStatus:
    """What the gradebook should show for one attempt: the fields of an AGS score."""

    user_id: str
    activity_progress: ActivityProgressValue
    grading_progress: GradingProgressValue
    timestamp: datetime
    score_given: float | None = None
    score_maximum: float | None = None
    comment: str | None = None

    @property
    def needs_review(self) -> bool:
        """True when a person has to look at the attempt before it counts."""
        return self.grading_progress in ("PendingManual", "Failed")


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


def score_for(
    state: str,
    *,
    report: AttemptReport | None,
    profile: Profile,
    user_sub: str,
    timestamp: datetime,
    violation_count: int | None = None,
) -> GradebookStatus:
    """Return the gradebook status for an attempt in `state` (created/started/finished/...)."""
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must carry a timezone")
    if state == "reported":
        if report is None:
            raise ValueError("a reported attempt needs its report")
        count = report.violation_count if violation_count is None else violation_count
        return _reported(report, profile, user_sub, timestamp, count)
    plain = _PLAIN_STATES.get(state)
    if plain is None:
        raise ValueError(f"unknown attempt state {state!r}")
    activity, grading, comment = plain
    return GradebookStatus(user_sub, activity, grading, timestamp, comment=comment)


_PLAIN_STATES: dict[str, tuple[ActivityProgressValue, GradingProgressValue, str]] = {
    "created": ("Initialized", "NotReady", "Proctoring: the exam has not started yet."),
    "started": ("Started", "Pending", "Proctoring: the exam is in progress."),
    "finished": (
        "Completed",
        "Pending",
        "Proctoring: the exam is finished; the proctoring report is being prepared.",
    ),
    # A failed attempt is over; Failed tells the LMS (and the instructor) that no proctoring
    # result will come, and both LMSs then ignore any score.
    "failed": (
        "Completed",
        "Failed",
        "Proctoring failed for this attempt; an instructor will review it.",
    ),
}


def _reported(
    report: AttemptReport, profile: Profile, user_sub: str, timestamp: datetime, count: int
) -> GradebookStatus:
    risk = report.risk_score
    if needs_review(risk, profile):
        # A person decides: no score is sent, so the tool never lowers a grade on its own
        # (Moodle drops scoreGiven unless FullyGraded anyway; Canvas would record it).
        return GradebookStatus(
            user_sub,
            "Completed",
            "PendingManual",
            timestamp,
            comment=_report_comment(risk, count, review=True),
        )
    assert risk is not None  # needs_review() is True for a missing risk
    maximum = float(profile.score_maximum)
    return GradebookStatus(
        user_sub,
        "Completed",
        "FullyGraded",
        timestamp,
        score_given=integrity_score(risk, score_maximum=maximum),
        score_maximum=maximum,
        comment=_report_comment(risk, count, review=False),
    )


def _report_comment(risk: float | None, count: int, *, review: bool) -> str:
    """Status, risk score and violation count only: students read comments, so no report link."""
    risk_text = "no risk score" if risk is None else f"risk score {_number(risk)} of 100"
    violations = "1 violation" if count == 1 else f"{count} violations"
    outcome = "an instructor will review this attempt" if review else "no review needed"
    return f"Proctoring report: {risk_text}, {violations}; {outcome}."


def _number(value: float) -> str:
    return f"{round(value, 2):g}"
