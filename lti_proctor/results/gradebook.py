"""The `ags.publish_status` job: post an attempt's proctoring status to the LMS gradebook (AGS).

One line item per exam ("Proctoring: <exam>", tag `proctoring`, on the exam's resource link),
found or created once and remembered on the Exam; never the launch's own `lineitem` (that is the
assignment's grade column). The payload's state decides which score is posted (results/scores.py),
stamped with the time the attempt entered that state, so a late or repeated job can only be
superseded, never overwrite a newer status. Errors follow jobs/retry.py: AgsUnavailableError is
retried (Retry-After honoured), a refusal the LMS will repeat becomes a PermanentJobError carrying
the LMS's answer.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import current_app

from lti_proctor.attempts.grading import MIN_STEP, status_time
from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.reports import as_attempt_report, get_report
from lti_proctor.attempts.review import AttemptReview, find_reviews
from lti_proctor.attempts.states import AttemptStatus
from lti_proctor.exam_settings import ExamSettings
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner
from lti_proctor.jobs.retry import JobCancelledError, PermanentJobError
from lti_proctor.lti.ags import (
    DEFAULT_SCOPES,
    AgsClient,
    AgsRejectedError,
    LineItemGoneError,
    PlatformCredentials,
    Score,
    ScoreOutcome,
    usable_scopes,
)
from lti_proctor.lti.keys import get_signing_key
from lti_proctor.lti.registrations import Platform
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.proctoring.types import Profile
from lti_proctor.results.scores import score_for
from lti_proctor.store import get_store

log = logging.getLogger(__name__)

LABEL_PREFIX = "Proctoring: "
LABEL_MAX_CHARS = 255  # Moodle's grade item name column
POSTABLE = frozenset(
    {AttemptStatus.STARTED, AttemptStatus.FINISHED, AttemptStatus.REPORTED, AttemptStatus.FAILED}
)


def publish_status(payload: dict[str, Any]) -> None:
    """Post the gradebook status of payload["state"] for payload["attempt_id"]."""
    attempt = load_attempt(payload)
    state = _payload_state(payload)
    exam = db.session.get(Exam, attempt.exam_id)
    learner = db.session.get(Learner, attempt.learner_id)
    platform = db.session.get(Platform, exam.platform_id) if exam is not None else None
    if exam is None or learner is None or platform is None:
        raise JobCancelledError(f"attempt {attempt.id} lost its exam, learner or platform")
    if not has_gradebook(exam):
        log.info(
            "attempt %s: exam %s has no AGS line items and score service; %s status not sent",
            attempt.id,
            exam.id,
            state.value,
        )
        return
    profile = attempt_profile(attempt)
    score = gradebook_score(attempt, learner, profile, state, review=_review_of(payload, attempt))
    client = ags_client(platform, exam)
    try:
        outcome = _deliver(client, exam, profile, score)
    except AgsRejectedError as exc:
        raise PermanentJobError(
            f"{exc} (the {state.value} status of attempt {attempt.id})"
        ) from exc
    log.info("attempt %s: %s status %s", attempt.id, state.value, outcome.value)


def load_attempt(payload: dict[str, Any]) -> Attempt:
    """The attempt a job names; JobCancelledError when it no longer exists."""
    attempt_id = str(payload.get("attempt_id") or "")
    attempt = db.session.get(Attempt, attempt_id) if attempt_id else None
    if attempt is None:
        raise JobCancelledError(f"attempt {attempt_id or '?'} no longer exists")
    return attempt


def _payload_state(payload: dict[str, Any]) -> AttemptStatus:
    try:
        state = AttemptStatus(str(payload.get("state")))
    except ValueError:
        raise PermanentJobError(f"no gradebook status for state {payload.get('state')!r}") from None
    if state not in POSTABLE:
        raise PermanentJobError(f"no gradebook status for state {state.value!r}")
    return state


def has_gradebook(exam: Exam) -> bool:
    """True when the exam's launches granted the line item and score scopes and a container URL."""
    return bool(exam.lineitems_url) and usable_scopes(exam.ags_scopes or ()) == DEFAULT_SCOPES


def attempt_profile(attempt: Attempt) -> Profile:
    """The profile the attempt ran under; PermanentJobError when it was removed since."""
    profile = get_profiles(current_app).get(attempt.profile_name)
    if profile is None:
        raise PermanentJobError(
            f"attempt {attempt.id} ran under the profile {attempt.profile_name!r}, which no "
            "longer exists; restore it, then retry this job (lti-proctor jobs retry)"
        )
    return profile


def _review_of(payload: dict[str, Any], attempt: Attempt) -> AttemptReview | None:
    """The review decision a job posts (payload review_id), or None for a plain status job."""
    review_id = payload.get("review_id")
    if review_id is None:
        return None
    review = db.session.get(AttemptReview, review_id)
    if review is None or review.attempt_id != attempt.id:
        raise JobCancelledError(f"review {review_id} of attempt {attempt.id} no longer exists")
    return review


def gradebook_score(
    attempt: Attempt,
    learner: Learner,
    profile: Profile,
    state: AttemptStatus,
    *,
    review: AttemptReview | None = None,
) -> Score:
    """What the gradebook shows for the attempt in `state`, stamped when it entered that state.

    A review decision's status is stamped with the decision's time (at least 1 s after the
    report's), so it always supersedes the PendingManual the report posted.
    """
    report = None
    if state is AttemptStatus.REPORTED:
        row = get_report(attempt.id)
        if row is None:
            raise PermanentJobError(f"attempt {attempt.id} is reported but has no stored report")
        report = as_attempt_report(row)
    times = {
        "started": attempt.started_at,
        "finished": attempt.finished_at,
        "failed": attempt.failed_at,
        "reported": attempt.reported_at,
    }
    if times.get(state.value) is None:
        if state.value != attempt.state:
            raise PermanentJobError(f"attempt {attempt.id} never was {state.value}")
        times[state.value] = attempt.state_changed_at
    timestamp = status_time(state.value, times)
    if review is not None:
        timestamp = review_time(review, after=timestamp)
    return score_for(
        state.value,
        report=report,
        profile=profile,
        user_sub=learner.sub,
        timestamp=timestamp,
        reviewed=review is not None,
        review_threshold=_exam_threshold(attempt),
        language=attempt.language,
    )


def review_time(review: AttemptReview, *, after: datetime) -> datetime:
    """The status time of a decision: its own, lifted to >= 1 s past the report and every
    earlier decision (Moodle keeps whole seconds and drops an equal one)."""
    moment = after
    for row in find_reviews(review.attempt_id):
        moment = max(row.created_at, moment + MIN_STEP)
        if row.id == review.id:
            break
    return moment


def _exam_threshold(attempt: Attempt) -> float | None:
    """The exam's own review threshold (its settings), or None to use the profile's."""
    exam = db.session.get(Exam, attempt.exam_id)
    settings = db.session.get(ExamSettings, exam.settings_id) if exam and exam.settings_id else None
    return settings.review_threshold if settings is not None else None


def ags_client(platform: Platform, exam: Exam) -> AgsClient:
    """An AGS client for the platform, asking for the scopes the exam's launches granted."""
    credentials = PlatformCredentials(
        id=str(platform.id),
        client_id=platform.client_id,
        token_url=platform.auth_token_url,
        auth_audience=platform.auth_audience,
    )
    return AgsClient(
        credentials,
        store=get_store(),
        signer=get_signing_key,
        timeout=float(current_app.config.get("LTI_HTTP_TIMEOUT_S") or 10),
        scopes=usable_scopes(exam.ags_scopes or ()),
    )


def _deliver(client: AgsClient, exam: Exam, profile: Profile, score: Score) -> ScoreOutcome:
    """Post score to the exam's line item; re-create the line item once if the LMS lost it."""
    try:
        return client.post_score(line_item_url(client, exam, profile), score)
    except LineItemGoneError:
        log.warning(
            "exam %s: line item %s is gone from the LMS; creating it again",
            exam.id,
            exam.proctoring_lineitem_url,
        )
        exam.proctoring_lineitem_url = None
        return client.post_score(line_item_url(client, exam, profile), score)


def line_item_url(client: AgsClient, exam: Exam, profile: Profile) -> str:
    """The exam's proctoring line item: the remembered one, else found or created once."""
    if exam.proctoring_lineitem_url:
        return exam.proctoring_lineitem_url
    assert exam.lineitems_url is not None  # has_gradebook() checked it
    url = client.find_or_create_line_item(
        exam.lineitems_url,
        resource_link_id=exam.resource_link_id,
        label=(LABEL_PREFIX + exam.display_name)[:LABEL_MAX_CHARS],
        score_maximum=float(profile.score_maximum),
    )
    exam.proctoring_lineitem_url = url
    db.session.flush()
    return url
