"""An attempt's gradebook status as the AGS score to post: progress values, score and comment.

Pure: plain values in (the attempt's state, its report, the profile), one `lti.ags.Score` out; no
Flask, no HTTP, no database. The gradebook job posts the score as it comes from here.

Ordering: the caller passes `timestamp` = the time the attempt entered `state` (its state-change
time, never the time the job runs). The LMS ignores a score older than the one it holds (AGS 2.0
Score service; Moodle answers 409, Canvas 400), so a late or retried job for an older state can
never overwrite a newer status.
"""

from __future__ import annotations

from datetime import datetime

from lti_proctor.attempts.grading import integrity_score, needs_review
from lti_proctor.lti.ags import ActivityProgress, GradingProgress, Score
from lti_proctor.proctoring.types import AttemptReport, Profile


def score_for(
    state: str,
    *,
    report: AttemptReport | None,
    profile: Profile,
    user_sub: str,
    timestamp: datetime,
    violation_count: int | None = None,
) -> Score:
    """Return the gradebook score for an attempt in `state` (created/started/finished/...)."""
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
    return Score(user_sub, activity, grading, timestamp, comment=comment)


_PLAIN_STATES: dict[str, tuple[ActivityProgress, GradingProgress, str]] = {
    "created": (
        ActivityProgress.INITIALIZED,
        GradingProgress.NOT_READY,
        "Proctoring: the exam has not started yet.",
    ),
    "started": (
        ActivityProgress.STARTED,
        GradingProgress.PENDING,
        "Proctoring: the exam is in progress.",
    ),
    "finished": (
        ActivityProgress.COMPLETED,
        GradingProgress.PENDING,
        "Proctoring: the exam is finished; the proctoring report is being prepared.",
    ),
    # A failed attempt is over; Failed tells the LMS (and the instructor) that no proctoring
    # result will come, and both LMSs then ignore any score.
    "failed": (
        ActivityProgress.COMPLETED,
        GradingProgress.FAILED,
        "Proctoring failed for this attempt; an instructor will review it.",
    ),
}


def _reported(
    report: AttemptReport, profile: Profile, user_sub: str, timestamp: datetime, count: int
) -> Score:
    risk = report.risk_score
    if needs_review(risk, profile):
        # A person decides: no score is sent, so the tool never lowers a grade on its own
        # (Moodle drops scoreGiven unless FullyGraded anyway; Canvas would record it).
        return Score(
            user_sub,
            ActivityProgress.COMPLETED,
            GradingProgress.PENDING_MANUAL,
            timestamp,
            comment=_report_comment(risk, count, review=True),
        )
    assert risk is not None  # needs_review() is True for a missing risk
    maximum = float(profile.score_maximum)
    return Score(
        user_sub,
        ActivityProgress.COMPLETED,
        GradingProgress.FULLY_GRADED,
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
