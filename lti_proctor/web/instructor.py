"""The instructor view of an exam link: its attempts, one attempt's report, and a CSV export.

Reached only from a validated instructor/admin launch of the link (exam.respond_to_launch hands
it over). Links between its pages carry a signed, short-lived instructor token (itsdangerous on
SECRET_KEY, salt of its own) bound to the platform, the course and the exam, never a cookie:
LMS frames may block third-party cookies. Every page answers with no-store, no referrer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, render_template
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_proctor.attempts.export import attempts_csv, export_filename
from lti_proctor.attempts.queries import find_attempts_for_exam, get_attempt_detail
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, sync_exam_from_launch
from lti_proctor.jobs.models import utcnow
from lti_proctor.lti.launch import LaunchContext
from lti_proctor.lti.registrations import Platform
from lti_proctor.web.exam_page import origin_of
from lti_proctor.web.observability import request_id

bp = Blueprint("instructor", __name__)

TOKEN_SALT = "lti-proctor.instructor"
TOKEN_TTL_S = 3600  # sliding: every page carries fresh links
STATE_LABELS = {
    "created": "Not started",
    "started": "In progress",
    "finished": "Finished, report pending",
    "reported": "Report ready",
    "failed": "Failed",
}
RISK_SOURCES = {
    "overall_risk_score": "AI risk score",
    "credibility": "100 - Trust Index",
    "none": "no score in the report",
}


# -- the instructor token ------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def _ttl() -> int:
    return int(current_app.config.get("PROCTOR_INSTRUCTOR_TOKEN_TTL_S", TOKEN_TTL_S))


def instructor_token(exam: Exam, origins: Sequence[str]) -> str:
    """A token for this exam's instructor pages; origins are the LMS pages that may frame them."""
    payload = {"p": exam.platform_id, "c": exam.context_id, "e": exam.id, "o": list(origins)}
    return str(_serializer().dumps(payload))


def _read_token(token: str) -> Mapping[str, Any] | None:
    try:
        payload = _serializer().loads(token, max_age=_ttl())
    except BadSignature:  # forged, altered or expired
        return None
    return payload if isinstance(payload, dict) else None


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
        if payload is None:
            return _refusal(401, "instructor.token_invalid", "This link has expired")
        exam = _exam_of(payload)
        if exam is None:
            return _refusal(403, "instructor.token_refused", "This link is not for this exam")
        origins = tuple(o for o in payload.get("o") or () if isinstance(o, str))
        page = InstructorPage(exam, token=instructor_token(exam, origins), origins=origins)
        return view(page, **kwargs)

    return wrapper


class InstructorPage:
    """The exam a request is about, the fresh token for its links and the LMS origins."""

    def __init__(self, exam: Exam, *, token: str, origins: Sequence[str]) -> None:
        self.exam, self.token, self.origins = exam, token, tuple(origins)


# -- responses -----------------------------------------------------------------------------------


def _secured(response: Response, origins: Sequence[str]) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            "script-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            " ".join(["frame-ancestors 'self'", *origins]),
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )
    return response


def _refusal(status: int, code: str, title: str) -> Response:
    html = render_template(
        "errors/generic.html",
        title=title,
        message="Open the exam link again from your course to see its proctoring results.",
        code=code,
        request_id=request_id(),
    )
    return _secured(current_app.make_response((html, status)), ())


def _render(page: InstructorPage, template: str, **context: Any) -> Response:
    html = render_template(
        template,
        exam=page.exam,
        token=page.token,
        exam_name=page.exam.display_name,
        state_labels=STATE_LABELS,
        risk_sources=RISK_SOURCES,
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
    """An instructor/admin launched the exam link: show its attempts."""
    exam = sync_exam_from_launch(ctx, now=utcnow())
    db.session.commit()
    origins = _launch_origins(ctx, exam)
    page = InstructorPage(exam, token=instructor_token(exam, origins), origins=origins)
    return _attempts_page(page)


def _attempts_page(page: InstructorPage) -> Response:
    rows = find_attempts_for_exam(page.exam.id)
    to_review = sum(1 for row in rows if row.needs_review)
    return _render(page, "instructor/attempts.html", attempts=rows, to_review=to_review)


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
        return _refusal(404, "instructor.attempt_unknown", "No such attempt at this exam")
    return _render(page, "instructor/attempt.html", detail=detail, attempt=detail.overview)


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


@bp.app_template_filter("utc")
def utc_filter(moment: datetime | None) -> str:
    """A time as "2026-03-02 08:00 UTC" (empty when there is none)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


@bp.app_template_filter("clock")
def clock_filter(seconds: object) -> str:
    """Seconds into the attempt as m:ss (h:mm:ss past an hour)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
