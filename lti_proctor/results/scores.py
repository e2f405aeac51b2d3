"""An attempt's gradebook status as the AGS score to post: progress values, score and comment.

Pure: plain values in (the attempt's state, its report, the profile, whether a person reviewed
it), one `lti.ags.Score` out; no Flask, no HTTP, no database. The review decides, not the risk
score: by default no scoreGiven is posted, and the comment is a plain status in words. The
gradebook job posts the score as it comes from here.

Ordering: the caller passes `timestamp` = the time the attempt entered `state` (its state-change
time, never the time the job runs). The LMS ignores a score older than the one it holds (AGS 2.0
Score service; Moodle answers 409, Canvas 400), so a late or retried job for an older state can
never overwrite a newer status.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from lti_proctor.attempts.grading import integrity_score
from lti_proctor.lti.ags import ActivityProgress, GradingProgress, Score
from lti_proctor.proctoring.types import AttemptReport, Profile


class Comment(StrEnum):
    """The only words a gradebook comment holds: students read it, so never a number or a link."""

    NOT_STARTED = "Proctoring not started"
    IN_PROGRESS = "Proctoring in progress"
    COMPLETE = "Proctoring complete"
    UNDER_REVIEW = "Proctoring under review"
    REVIEWED = "Proctoring reviewed"
    FAILED = "Proctoring failed"


# The comment in the attempt's language; English where there is no translation.
_TRANSLATIONS: dict[str, dict[Comment, str]] = {
    "ru": {
        Comment.NOT_STARTED: "Прокторинг не начат",
        Comment.IN_PROGRESS: "Прокторинг идёт",
        Comment.COMPLETE: "Прокторинг завершён",
        Comment.UNDER_REVIEW: "Прокторинг на проверке",
        Comment.REVIEWED: "Прокторинг проверен",
        Comment.FAILED: "Прокторинг не удался",
    },
    "kk": {
        Comment.NOT_STARTED: "Прокторинг басталмады",
        Comment.IN_PROGRESS: "Прокторинг жүріп жатыр",
        Comment.COMPLETE: "Прокторинг аяқталды",
        Comment.UNDER_REVIEW: "Прокторинг тексерілуде",
        Comment.REVIEWED: "Прокторинг тексерілді",
        Comment.FAILED: "Прокторинг сәтсіз аяқталды",
    },
}


def comment_text(comment: Comment, language: str | None) -> str:
    """The comment in `language` (ru, kk; kz is Kazakh too), else in English."""
    lang = (language or "").lower().replace("_", "-").split("-")[0]
    lang = "kk" if lang == "kz" else lang
    return _TRANSLATIONS.get(lang, {}).get(comment, comment.value)


def score_for(
    state: str,
    *,
    report: AttemptReport | None,
    profile: Profile,
    user_sub: str,
    timestamp: datetime,
    reviewed: bool = False,
    review_threshold: float | None = None,
    language: str | None = None,
) -> Score:
    """Return the gradebook score for an attempt in `state` (created/started/finished/...).

    A report below the review threshold (the exam's own, else the profile's) completes the
    grading; at or above it waits for a person (PendingManual) until `reviewed`. A number is
    posted only where the profile asks for it (gradebook_score: integrity).
    """
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must carry a timezone")
    if state == "reported":
        if report is None:
            raise ValueError("a reported attempt needs its report")
        threshold = profile.review_threshold if review_threshold is None else review_threshold
        return _reported(report, profile, user_sub, timestamp, threshold, reviewed, language)
    plain = _PLAIN_STATES.get(state)
    if plain is None:
        raise ValueError(f"unknown attempt state {state!r}")
    activity, grading, comment = plain
    return Score(user_sub, activity, grading, timestamp, comment=comment_text(comment, language))


_PLAIN_STATES: dict[str, tuple[ActivityProgress, GradingProgress, Comment]] = {
    "created": (ActivityProgress.INITIALIZED, GradingProgress.NOT_READY, Comment.NOT_STARTED),
    "started": (ActivityProgress.STARTED, GradingProgress.PENDING, Comment.IN_PROGRESS),
    "finished": (ActivityProgress.COMPLETED, GradingProgress.PENDING, Comment.COMPLETE),
    # A failed attempt is over; Failed tells the LMS (and the instructor) that no proctoring
    # result will come, and both LMSs then ignore any score.
    "failed": (ActivityProgress.COMPLETED, GradingProgress.FAILED, Comment.FAILED),
}


def _reported(
    report: AttemptReport,
    profile: Profile,
    user_sub: str,
    timestamp: datetime,
    threshold: float,
    reviewed: bool,
    language: str | None,
) -> Score:
    risk = report.risk_score
    flagged = risk is None or risk >= threshold
    if flagged and not reviewed:
        # A person decides: nothing but the status is sent until they have.
        return Score(
            user_sub,
            ActivityProgress.COMPLETED,
            GradingProgress.PENDING_MANUAL,
            timestamp,
            comment=comment_text(Comment.UNDER_REVIEW, language),
        )
    comment = Comment.REVIEWED if flagged else Comment.COMPLETE
    score_given = score_maximum = None
    if profile.gradebook_score == "integrity" and risk is not None:
        # Opted in by the profile: students see this number, and Canvas counts it.
        score_maximum = float(profile.score_maximum)
        score_given = integrity_score(risk, score_maximum=score_maximum)
    return Score(
        user_sub,
        ActivityProgress.COMPLETED,
        GradingProgress.FULLY_GRADED,
        timestamp,
        score_given=score_given,
        score_maximum=score_maximum,
        comment=comment_text(comment, language),
    )
