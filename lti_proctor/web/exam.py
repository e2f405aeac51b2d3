"""The exam's pages: the starting page a launch answers with at once, the wrapper page (SDK +
Content Protect) that POST /exam/start answers once the service call is done, its attempt API,
the retry and new-window links.

The page never gets a cookie: it talks to the tool with a signed, short-lived attempt token sent
as `Authorization: Bearer`, so it works in LMS frames where third-party cookies are blocked.
The exam's URL and access code reach the page only through the API, once the attempt started.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from lti_proctor.attempts import operations as attempts
from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.start import ExamContent, start_attempt
from lti_proctor.attempts.states import AttemptStateError
from lti_proctor.exam_settings import seal_code, unseal_code
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner, from_start_snapshot, start_snapshot
from lti_proctor.lti.registrations import platform_snapshot
from lti_proctor.proctoring import client as proctoring_client
from lti_proctor.proctoring.errors import ProviderError, ProviderUnavailableError
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.proctoring.types import Profile
from lti_proctor.reasons import Reason
from lti_proctor.store import get_store
from lti_proctor.timeutil import utcnow
from lti_proctor.web.errors import error_response, new_request_id
from lti_proctor.web.exam_page import (
    PageContext,
    api_token,
    exam_csp,
    open_url,
    origin_of,
    sdk_language,
    sign,
    token_ttl,
    unsign,
)
from lti_proctor.web.language import gettext as _
from lti_proctor.web.language import use_language

log = logging.getLogger(__name__)
bp = Blueprint("exam", __name__)

PROTECTOR_MATCH = ".question-wrapper"
RETRY_TTL_S = 900  # a start or retry token, and the exam content it refers to, live this long
SLOW_AFTER_S = 20  # the starting page says "taking longer than usual" after this many seconds


def _page_context(
    exam: Exam,
    *,
    locale_or_lang: str | None,
    return_url: str | None,
    max_attempts: int | None = None,
) -> PageContext:
    platform = platform_snapshot(exam.platform_id)
    candidates = [return_url]
    if platform is not None:
        candidates += [platform.issuer, platform.auth_login_url]
    origins = tuple(dict.fromkeys(o for o in map(origin_of, candidates) if o))
    use_language(locale_or_lang)  # the page speaks the launch's language (kz/kk: Kazakh)
    return PageContext(sdk_language(locale_or_lang), return_url, origins, max_attempts)


# -- starting from a launch or a retry -------------------------------------------------------


@dataclass(frozen=True)
class StartRequest:
    """Everything a start needs from a launch, kept so a retry can repeat it."""

    exam_id: int
    learner_id: int
    profile_name: str
    exam_url: str | None
    access_code: str | None
    max_attempts: int
    language: str
    return_url: str | None


def starting_page(req: StartRequest, exam: Exam, learner: Learner) -> Response:
    """The launch's answer, sent before the service is asked anything: "Starting your exam…"
    with a spinner and elapsed seconds, whose script posts the start (start_page) at once.

    Only a signed reference rides in the page (_retry_token): the exam URL and access code wait
    in the shared store, as for the service-down page's retry.
    """
    html = render_template(
        "exam/starting.html",
        start_token=_retry_token(req, exam, learner),
        slow_after_s=SLOW_AFTER_S,
    )
    return _no_store(current_app.make_response(html))


def start_page(req: StartRequest, exam: Exam, learner: Learner, profile: Profile) -> Response:
    """Start or resume the attempt (attempts.start says how) and answer with the exam's page."""
    page = _page_context(
        exam,
        locale_or_lang=req.language,
        return_url=req.return_url,
        max_attempts=req.max_attempts,
    )
    try:
        started = start_attempt(
            exam=exam,
            learner=learner,
            profile=profile,
            content=ExamContent(req.exam_url, req.access_code, req.max_attempts, req.language),
            links=_session_links(),
            client=proctoring_client.get_client(current_app),
            commit=commit_keeping_rows,
            clock=utcnow,
        )
    except ProviderError as exc:
        return _service_down(exc, req, exam, learner)
    if started.attempt is None:
        return _finished_page(started.outcome, page)
    return _wrapper_page(started.attempt, page, profile)


def commit_keeping_rows() -> None:
    """Commit without expiring the exam, learner and attempt this launch holds.

    The launch wrote or read each of them itself in this request (the attempt's last write
    returns its row), so reading them again after each commit would cost a query apiece.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def _session_links() -> attempts.SessionLinks:
    base = str(current_app.config["BASE_URL"])
    return attempts.SessionLinks(
        webhook_start_url=base + url_for("webhooks.trustexam_event", event="start"),
        webhook_finish_url=base + url_for("webhooks.trustexam_event", event="finish"),
    )


# -- pages ---------------------------------------------------------------------------------------


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _wrapper_page(attempt: Attempt, page: PageContext, profile: Profile | None) -> Response:
    sdk_url = str(current_app.config["TRUSTEXAM_SDK_URL"])
    html = render_template(
        "exam/wrapper.html",
        attempt=attempt,
        sdk_url=sdk_url,
        language=page.language,
        protector_match=PROTECTOR_MATCH,
        protector_color=profile.protector_text_color if profile else "#1f2937",
        api_token=api_token(attempt),
        open_url=open_url(attempt, page),
        return_url=page.return_url,
        max_attempts=page.max_attempts,
        # Tabs of one attempt talk on this channel (the newest holds it); the id stays hidden.
        channel="lti-proctor." + hashlib.sha256(attempt.id.encode()).hexdigest()[:16],
    )
    response = current_app.make_response(html)
    response.headers["Content-Security-Policy"] = exam_csp(
        sdk_url=sdk_url, exam_url=attempt.exam_url, frame_ancestors=page.lms_origins
    )
    return _no_store(response)


def _finished_page(outcome: attempts.StartOutcome, page: PageContext) -> Response:
    html = render_template(
        "exam/finished.html",
        attempts_used=outcome.attempts_used,
        max_attempts=outcome.max_attempts,
        return_url=page.return_url,
    )
    return _no_store(current_app.make_response(html))


def _service_down(exc: ProviderError, req: StartRequest, exam: Exam, learner: Learner) -> Response:
    request_id = new_request_id()
    unavailable = isinstance(exc, ProviderUnavailableError)
    reason = Reason.PROCTOR_UNAVAILABLE if unavailable else Reason.PROCTOR_REJECTED
    log.error("%s request_id=%s status=%s: %s", reason.value, request_id, exc.status, exc)
    return error_response(
        reason,
        503 if unavailable else 502,
        shape="page",
        template="errors/service_down.html",
        request_id=request_id,
        unavailable=unavailable,
        retry_token=_retry_token(req, exam, learner),
        return_url=req.return_url,
        headers={"Referrer-Policy": "no-referrer"},
    )


def _retry_token(req: StartRequest, exam: Exam, learner: Learner) -> str:
    """Sign the start; the exam URL, the access code and what the start reads of the exam and
    learner wait in the shared store, not in the page."""
    key = "exam-retry:" + secrets.token_urlsafe(16)
    kept = {
        "exam_url": req.exam_url,
        "access_code": seal_code(req.access_code),
        **start_snapshot(exam, learner),
    }
    get_store().set(key, json.dumps(kept), RETRY_TTL_S)
    return sign(
        "retry",
        {
            "e": req.exam_id,
            "u": req.learner_id,
            "p": req.profile_name,
            "m": req.max_attempts,
            "l": req.language,
            "r": req.return_url,
            "k": key,
        },
    )


@dataclass(frozen=True)
class _KeptStart:
    """A start token's request, with the exam and learner as the launch saw them (or None)."""

    req: StartRequest
    rows: tuple[Exam, Learner] | None


def _start_request_from_retry(payload: Mapping[str, Any]) -> _KeptStart | None:
    stored = get_store().get(str(payload.get("k")))
    if stored is None:
        return None
    content = json.loads(stored)
    req = StartRequest(
        exam_id=int(payload["e"]),
        learner_id=int(payload["u"]),
        profile_name=str(payload["p"]),
        exam_url=content.get("exam_url"),
        access_code=unseal_code(content.get("access_code")),
        max_attempts=int(payload["m"]),
        language=str(payload["l"]),
        return_url=payload.get("r"),
    )
    return _KeptStart(req, from_start_snapshot(content))


def _rows_of(kept: _KeptStart) -> tuple[Exam | None, Learner | None]:
    """The exam and learner of a start: the launch's copies, else read (an older token)."""
    if kept.rows is not None:
        return kept.rows
    return db.session.get(Exam, kept.req.exam_id), db.session.get(Learner, kept.req.learner_id)


@bp.post("/exam/start")
def start() -> ResponseReturnValue:
    """Start or resume the attempt a launch (or a service-down page) signed a token for.

    The starting page's form and the service-down page's Try again both post here; the same
    token posted twice (a reload, a second tab) resumes the attempt the first one started.
    """
    payload = unsign("retry", request.form.get("token"), max_age_s=RETRY_TTL_S)
    kept = _start_request_from_retry(payload) if payload else None
    exam, learner = _rows_of(kept) if kept else (None, None)
    profile = get_profiles(current_app).get(kept.req.profile_name) if kept else None
    if kept is None or exam is None or learner is None or profile is None:
        return _start_expired()
    try:
        return start_page(kept.req, exam, learner, profile)
    except IntegrityError:  # the exam or learner is gone since the launch (a removed platform)
        db.session.rollback()
        return _start_expired()


def _start_expired() -> Response:
    return error_response(
        Reason.EXAM_RETRY_EXPIRED,
        400,
        shape="page",
        title=_("This page has expired"),
        message=_("Open the exam again from your course page."),
    )


# The service-down page's Try again: the same view (one code path), under its own name.
bp.add_url_rule("/exam/retry", endpoint="retry", view_func=start, methods=["POST"])


@bp.get("/exam/open/<token>")
def open_attempt(token: str) -> ResponseReturnValue:
    """The same attempt's wrapper page, opened in a new window (outside the LMS frame)."""
    payload = unsign("open", token, max_age_s=token_ttl())
    attempt = attempts.get_attempt(str(payload.get("a"))) if payload else None
    if payload is None or attempt is None:
        return error_response(
            Reason.EXAM_LINK_EXPIRED,
            401,
            shape="page",
            title=_("This link has expired"),
            message=_("Open the exam again from your course."),
        )
    exam = db.session.get(Exam, attempt.exam_id)
    assert exam is not None  # attempts go with their exam
    page = _page_context(
        exam,
        locale_or_lang=payload.get("l"),
        return_url=payload.get("r"),
        max_attempts=payload.get("m"),
    )
    profile = get_profiles(current_app).get(attempt.profile_name)
    return _wrapper_page(attempt, page, profile)


# -- the page's API ------------------------------------------------------------------------------


def _api_error(status: int, reason: Reason, message: str) -> Response:
    return error_response(
        reason, status, shape="json", message=message, headers={"Referrer-Policy": "no-referrer"}
    )


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def attempt_api(view: Callable[[Attempt], Response]) -> Callable[[], Response]:
    """Load the attempt named by the bearer token, or answer 401 JSON."""

    @functools.wraps(view)
    def wrapper() -> Response:
        payload = unsign("api", _bearer(), max_age_s=token_ttl())
        attempt = attempts.get_attempt(str(payload.get("a"))) if payload else None
        if attempt is None:
            return _api_error(
                401, Reason.EXAM_TOKEN_INVALID, "The page's token is invalid or expired."
            )
        return view(attempt)

    return wrapper


def _state_body(attempt: Attempt) -> dict[str, Any]:
    body = dict(attempts.attempt_summary(attempt))
    body["token"] = api_token(attempt)
    return body


@bp.get("/exam/api/attempt/state")
@attempt_api
def attempt_state(attempt: Attempt) -> Response:
    """The attempt's state for the page (polled until the start webhook arrived)."""
    return _no_store(current_app.make_response(_state_body(attempt)))


@bp.post("/exam/api/attempt/started")
@attempt_api
def attempt_started(attempt: Attempt) -> Response:
    """The page reports that the SDK's start() resolved (counts only for start_proof "sdk")."""
    try:
        attempts.record_sdk_started(attempt, now=utcnow())
    except attempts.StartProofError:
        return _api_error(
            403, Reason.ATTEMPT_START_PROOF_WEBHOOK, "The service confirms the start."
        )
    except AttemptStateError:
        return _api_error(409, Reason.ATTEMPT_STATE_CONFLICT, "This attempt cannot start again.")
    db.session.commit()
    return _no_store(current_app.make_response(_state_body(attempt)))


@bp.get("/exam/api/attempt/content")
@attempt_api
def attempt_content(attempt: Attempt) -> Response:
    """The exam URL and access code, only once the attempt has started."""
    content = attempts.revealed_content(attempt)
    if content is None:
        return _api_error(
            403, Reason.ATTEMPT_NOT_STARTED, "The exam opens once proctoring started."
        )
    return _no_store(current_app.make_response({**content, "token": api_token(attempt)}))


@bp.post("/exam/api/attempt/submitted")
@attempt_api
def attempt_submitted(attempt: Attempt) -> Response:
    """The page says the student submitted; the finish webhook remains the authority."""
    attempts.record_submitted(attempt, now=utcnow())
    db.session.commit()
    return _no_store(current_app.make_response(_state_body(attempt)))
