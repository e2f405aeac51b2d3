"""The instructor view of an exam link: its attempts, one attempt's report, and a CSV export.

Reached only from a launch that web/lti.py's role policy sends to the instructor view. Links
between its pages carry a signed, short-lived instructor token (itsdangerous on SECRET_KEY, salt
of its own) bound to the platform, the course and the exam, never a cookie: LMS frames may block
third-party cookies. Every page answers with no-store, no referrer.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_proctor.attempts.export import attempts_csv, export_filename
from lti_proctor.attempts.operations import get_attempt
from lti_proctor.attempts.queries import find_attempts_for_exam, get_attempt_detail
from lti_proctor.attempts.review import Reviewer, ReviewError, find_reviews, review_attempt
from lti_proctor.exam_settings import (
    ExamUnavailableError,
    Owner,
    find_settings_for_launch,
    get_legacy_link,
    remember_legacy_link,
)
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, link_exam_settings, sync_exam_from_launch
from lti_proctor.lti.context import LaunchContext
from lti_proctor.lti.errors import LaunchError
from lti_proctor.lti.registrations import Platform
from lti_proctor.reasons import Reason
from lti_proctor.results.roster import find_roster
from lti_proctor.store import get_store
from lti_proctor.timeutil import utcnow
from lti_proctor.web import headers
from lti_proctor.web.errors import error_response
from lti_proctor.web.headers import origin_of
from lti_proctor.web.instructor_labels import (
    DECISION_LABELS,
    LEVELS,
    RISK_SOURCES,
    STATE_LABELS,
    event_name,
)
from lti_proctor.web.language import current_language, use_language
from lti_proctor.web.language import gettext as _

bp = Blueprint("instructor", __name__)

TOKEN_SALT = "lti-proctor.instructor"
TOKEN_TTL_S = 3600  # sliding: every page carries fresh links
# However often its links are refreshed, an instructor's view ends this long after the launch
# (a working day; PROCTOR_INSTRUCTOR_LINK_MAX_S): then the instructor launches again.
LINK_MAX_S = 8 * 3600


# -- the instructor token ------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def _ttl() -> int:
    return int(current_app.config.get("PROCTOR_INSTRUCTOR_TOKEN_TTL_S", TOKEN_TTL_S))


def instructor_token(
    exam: Exam,
    origins: Sequence[str],
    who: Reviewer | None = None,
    *,
    launched_at: float | None = None,
) -> str:
    """A token for this exam's instructor pages; origins are the LMS pages that may frame them.

    launched_at (default: now) is when the instructor launched; refreshed tokens keep it.
    """
    payload = {
        "p": exam.platform_id,
        "c": exam.context_id,
        "e": exam.id,
        "o": list(origins),
        "l": current_language(),  # the pages keep the launch's language
        "t": time.time() if launched_at is None else launched_at,
        "u": [who.sub, who.name] if who else None,  # who reviews, as the launch named them
    }
    return str(_serializer().dumps(payload))


def _link_max_s() -> int:
    return int(current_app.config.get("PROCTOR_INSTRUCTOR_LINK_MAX_S", LINK_MAX_S))


def _read_token(token: str) -> Mapping[str, Any] | None:
    try:
        payload = _serializer().loads(token, max_age=_ttl())
    except BadSignature:  # forged, altered or expired
        return None
    if not isinstance(payload, dict):
        return None
    launched = payload.get("t")
    if not isinstance(launched, int | float) or time.time() - launched > _link_max_s():
        return None  # the working day since the launch is over, however often refreshed
    return payload


def _exam_of(payload: Mapping[str, Any]) -> Exam | None:
    """The token's exam, only if it still belongs to the token's platform and course."""
    exam = db.session.get(Exam, payload.get("e")) if isinstance(payload.get("e"), int) else None
    if exam is None or exam.platform_id != payload.get("p") or exam.context_id != payload.get("c"):
        return None
    return exam


def instructor_page(view: Callable[..., Response]) -> Callable[..., Response]:
    """Resolve the URL's token to its exam (401 when invalid or expired, 403 when not bound)."""

    @functools.wraps(view)
    def wrapper(token: str, **kwargs: Any) -> Response:
        payload = _read_token(token)
        use_language(payload.get("l") if payload else None)
        if payload is None:
            return _refusal(401, Reason.INSTRUCTOR_TOKEN_INVALID, _("This link has expired"))
        exam = _exam_of(payload)
        if exam is None:
            return _refusal(
                403, Reason.INSTRUCTOR_TOKEN_REFUSED, _("This link is not for this exam")
            )
        origins = tuple(o for o in payload.get("o") or () if isinstance(o, str))
        who = _reviewer_of(payload)
        fresh = instructor_token(exam, origins, who, launched_at=float(payload["t"]))
        page = InstructorPage(exam, token=fresh, origins=origins, who=who)
        return view(page, **kwargs)

    return wrapper


def _reviewer_of(payload: Mapping[str, Any]) -> Reviewer | None:
    who = payload.get("u")
    if isinstance(who, list) and len(who) == 2 and isinstance(who[0], str):
        return Reviewer(sub=who[0], name=who[1] if isinstance(who[1], str) else None)
    return None


class InstructorPage:
    """The exam a request is about, the fresh token for its links and the LMS origins."""

    def __init__(
        self, exam: Exam, *, token: str, origins: Sequence[str], who: Reviewer | None = None
    ) -> None:
        self.exam, self.token, self.origins, self.who = exam, token, tuple(origins), who


# -- responses -----------------------------------------------------------------------------------


def _secured(response: Response, origins: Sequence[str]) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = headers.instructor_csp(origins)
    return response


def _refusal(status: int, reason: Reason, title: str) -> Response:
    response = error_response(
        reason,
        status,
        shape="page",
        title=title,
        message=_("Open the exam link again from your course to see its proctoring results."),
    )
    return _secured(response, ())


def _render(page: InstructorPage, template: str, **context: Any) -> Response:
    html = render_template(
        template,
        exam=page.exam,
        token=page.token,
        exam_name=page.exam.display_name,
        state_labels=STATE_LABELS,
        risk_sources=RISK_SOURCES,
        levels=LEVELS,
        event_name=event_name,
        **context,
    )
    return _secured(current_app.make_response(html), page.origins)


def _launch_origins(ctx: LaunchContext, exam: Exam) -> tuple[str, ...]:
    platform = db.session.get(Platform, exam.platform_id)
    candidates = [ctx.return_url]
    if platform is not None:
        candidates += [platform.issuer, platform.auth_login_url]
    return tuple(dict.fromkeys(o for o in map(origin_of, candidates) if o))


# -- pages ---------------------------------------------------------------------------------------


def respond_to_instructor_launch(ctx: LaunchContext) -> ResponseReturnValue:
    """An instructor/admin launched the exam link: show its attempts (and settings, roster)."""
    use_language(ctx.locale)
    now = utcnow()
    exam = sync_exam_from_launch(ctx, now=now)
    owner = Owner(ctx.platform_id, ctx.deployment_id, ctx.context_id or "")
    ref = (ctx.custom.get("exam") or "").strip() or None
    try:
        settings = find_settings_for_launch(owner, ref=ref, linked_id=exam.settings_id)
    except ExamUnavailableError as exc:
        db.session.rollback()
        raise LaunchError(exc.reason, exc.detail) from exc
    if settings is not None:
        link_exam_settings(exam, settings.id, now=now)
    db.session.commit()  # before the store: on SQLite it writes through its own connection
    if settings is None and (ctx.custom.get("access_code") or "").strip():
        remember_legacy_link(get_store(), exam.id, ctx.custom)
    origins = _launch_origins(ctx, exam)
    who = Reviewer(sub=ctx.user_sub, name=ctx.user_name)
    page = InstructorPage(
        exam, token=instructor_token(exam, origins, who), origins=origins, who=who
    )
    return _attempts_page(page)


def _attempts_page(page: InstructorPage) -> Response:
    rows = find_attempts_for_exam(page.exam.id)
    roster = find_roster(page.exam)
    to_review = sum(1 for row in rows if row.needs_review)
    counts = {
        "started": sum(1 for row in rows if row.started_at is not None),
        "finished": sum(1 for row in rows if row.state in ("finished", "reported")),
        "review": to_review,
        "no_concern": sum(1 for row in rows if row.needs_review is False),
    }
    return _render(
        page,
        "instructor/attempts.html",
        attempts=rows,
        to_review=to_review,
        counts=counts,
        roster=roster,
        legacy_code=page.exam.settings_id is None
        and get_legacy_link(get_store(), page.exam.id) is not None,
    )


@bp.get("/instructor/<token>/attempts")
@instructor_page
def attempts(page: InstructorPage) -> Response:
    """The exam's attempts: student, state, times, risk, violations, review flag, report link."""
    return _attempts_page(page)


@bp.get("/instructor/<token>/attempts/<attempt_id>")
@instructor_page
def attempt_detail(page: InstructorPage, attempt_id: str) -> Response:
    """One attempt of this exam with its violations, timeline and recommendations."""
    detail = get_attempt_detail(page.exam.id, attempt_id)
    if detail is None:  # not an attempt at this exam: say nothing more
        return _refusal(404, Reason.INSTRUCTOR_ATTEMPT_UNKNOWN, _("No such attempt at this exam"))
    return _render(
        page,
        "instructor/attempt.html",
        detail=detail,
        attempt=detail.overview,
        reviews=find_reviews(detail.overview.id),
        decisions=DECISION_LABELS,
        review_error=None,
    )


@bp.post("/instructor/<token>/attempts/<attempt_id>/review")
@instructor_page
def review(page: InstructorPage, attempt_id: str) -> Response:
    """The review form: record the decision; the gradebook follows it."""
    attempt = get_attempt(attempt_id)
    if attempt is None or attempt.exam_id != page.exam.id or page.who is None:
        return _refusal(404, Reason.INSTRUCTOR_ATTEMPT_UNKNOWN, _("No such attempt at this exam"))
    try:
        review_attempt(
            attempt,
            request.form.get("decision", ""),
            note=request.form.get("note"),
            reviewer=page.who,
        )
    except ReviewError as exc:
        db.session.rollback()
        response = error_response(
            Reason.INSTRUCTOR_REVIEW_INVALID, 400, shape="page", message=str(exc)
        )
        return _secured(response, page.origins)
    db.session.commit()
    target = url_for("instructor.attempt_detail", token=page.token, attempt_id=attempt_id)
    return _secured(current_app.make_response(redirect(target, 303)), page.origins)


@bp.get("/instructor/<token>/attempts.csv")
@instructor_page
def attempts_export(page: InstructorPage) -> Response:
    """The exam's attempts as a CSV download."""
    body = attempts_csv(find_attempts_for_exam(page.exam.id))
    name = export_filename(page.exam.display_name, now=utcnow())
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    response = current_app.make_response((body, 200, headers))
    return _secured(response, page.origins)


# -- template helpers ----------------------------------------------------------------------------


@bp.app_template_filter("clock")
def clock_filter(seconds: object) -> str:
    """Seconds into the attempt as m:ss (h:mm:ss past an hour)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
