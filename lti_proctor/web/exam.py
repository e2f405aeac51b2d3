"""The exam wrapper page (SDK + Content Protect), its attempt API, the retry and new-window links.

The page never gets a cookie: it talks to the tool with a signed, short-lived attempt token sent
as `Authorization: Bearer`, so it works in LMS frames where third-party cookies are blocked.
The exam's URL and access code reach the page only through the API, once the attempt started.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from lti_proctor.attempts import operations as attempts
from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.states import AttemptStateError
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner, sync_exam_from_launch, sync_learner_from_launch
from lti_proctor.jobs.models import utcnow
from lti_proctor.lti.launch import LaunchContext
from lti_proctor.lti.registrations import Deployment, Platform
from lti_proctor.proctoring import client as proctoring_client
from lti_proctor.proctoring.errors import (
    ProviderError,
    ProviderUnavailableError,
    UnknownProfileError,
)
from lti_proctor.proctoring.profiles import get_profiles, resolve_profile
from lti_proctor.proctoring.types import Profile, SessionRequest
from lti_proctor.store import get_store
from lti_proctor.web import instructor
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
from lti_proctor.web.observability import note_reason, request_id

log = logging.getLogger(__name__)
bp = Blueprint("exam", __name__)

PROTECTOR_MATCH = ".question-wrapper"
RETRY_TTL_S = 900


def _page_context(exam: Exam, *, locale_or_lang: str | None, return_url: str | None) -> PageContext:
    platform = db.session.get(Platform, exam.platform_id)
    candidates = [return_url]
    if platform is not None:
        candidates += [platform.issuer, platform.auth_login_url]
    origins = tuple(dict.fromkeys(o for o in map(origin_of, candidates) if o))
    return PageContext(sdk_language(locale_or_lang), return_url, origins)


# -- the launch hand-off -------------------------------------------------------------------------


def respond_to_launch(ctx: LaunchContext) -> ResponseReturnValue:
    """Answer a validated resource-link launch: instructor page, or the learner's exam page."""
    if ctx.is_instructor:
        return _instructor_view(ctx)
    try:
        profile = _resolve_profile(ctx)
    except UnknownProfileError as exc:
        log.warning("launch.profile_unknown: %s", exc)
        return _error_page(
            400,
            "launch.profile_unknown",
            "Unknown proctoring profile",
            f"This exam asks for the proctoring profile {exc.name!r}, which this tool does "
            "not have. Ask your instructor or administrator to fix the exam's settings.",
        )
    now = utcnow()
    exam = sync_exam_from_launch(ctx, now=now)
    learner = sync_learner_from_launch(ctx, now=now)
    request_ = StartRequest.from_launch(ctx, exam=exam, learner=learner, profile=profile)
    return _start(request_, exam, learner, profile)


def _instructor_view(ctx: LaunchContext) -> ResponseReturnValue:
    """The teacher's page of this exam link: the attempts and their proctoring results."""
    return instructor.respond_to_instructor_launch(ctx)


def _resolve_profile(ctx: LaunchContext) -> Profile:
    deployment_default = db.session.scalar(
        select(Deployment.default_profile).where(
            Deployment.platform_id == ctx.platform_id,
            Deployment.deployment_id == ctx.deployment_id,
        )
    )
    return resolve_profile(
        get_profiles(current_app),
        custom_name=ctx.custom.get("proctoring_profile"),
        deployment_default=deployment_default,
        fallback=str(current_app.config.get("PROCTOR_DEFAULT_PROFILE") or "standard"),
    )


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

    @classmethod
    def from_launch(
        cls, ctx: LaunchContext, *, exam: Exam, learner: Learner, profile: Profile
    ) -> StartRequest:
        """The start request of a validated launch."""
        return cls(
            exam_id=exam.id,
            learner_id=learner.id,
            profile_name=profile.name,
            exam_url=(ctx.custom.get("exam_url") or "").strip() or None,
            access_code=(ctx.custom.get("access_code") or "").strip() or None,
            max_attempts=attempts.parse_max_attempts(ctx.custom.get("max_attempts")),
            language=sdk_language(ctx.locale),
            return_url=ctx.return_url if origin_of(ctx.return_url) else None,
        )


def _start(req: StartRequest, exam: Exam, learner: Learner, profile: Profile) -> Response:
    """Start or resume in three short transactions; attempts.begin_start says why."""
    page = _page_context(exam, locale_or_lang=req.language, return_url=req.return_url)
    pending = attempts.begin_start(
        exam=exam,
        learner=learner,
        profile=profile,
        links=_session_links(),
        now=utcnow(),
        max_attempts=req.max_attempts,
        exam_url=req.exam_url,
        access_code=req.access_code,
    )
    db.session.commit()  # phase 1 ends: nothing stays open while the service answers
    if pending.session is None:
        return _finished_page(pending.outcome, page)
    try:
        attempt = _open_session(pending, pending.session)
    except ProviderError as exc:
        attempts.abandon_start(pending)  # a new attempt goes; a resumed one stays as it was
        db.session.commit()
        return _service_down(exc, req)
    db.session.commit()
    return _wrapper_page(attempt, page, profile)


def _open_session(pending: attempts.PendingStart, session: SessionRequest) -> Attempt:
    """Phase 2 (the upsert, no transaction open) and phase 3 (store its answer)."""
    result = proctoring_client.get_client(current_app).upsert_session(session)
    return attempts.complete_start(pending, result, now=utcnow())


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
        page_lang=page.language if page.language != "kz" else "kk",
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


def _service_down(exc: ProviderError, req: StartRequest) -> Response:
    unavailable = isinstance(exc, ProviderUnavailableError)
    code = "proctor.unavailable" if unavailable else "proctor.rejected"
    note_reason(code)
    log.error("%s request_id=%s status=%s: %s", code, request_id(), exc.status, exc)
    html = render_template(
        "errors/service_down.html",
        code=code,
        unavailable=unavailable,
        request_id=request_id(),
        retry_token=_retry_token(req),
        return_url=req.return_url,
    )
    return _no_store(current_app.make_response((html, 503 if unavailable else 502)))


def _error_page(status: int, code: str, title: str, message: str) -> Response:
    note_reason(code)
    html = render_template(
        "errors/generic.html",
        title=title,
        message=message,
        code=code,
        request_id=request_id(),
    )
    return current_app.make_response((html, status))


def _retry_token(req: StartRequest) -> str:
    """Sign the retry; the exam URL and access code wait in the shared store, not in the page."""
    key = "exam-retry:" + secrets.token_urlsafe(16)
    get_store().set(
        key, json.dumps({"exam_url": req.exam_url, "access_code": req.access_code}), RETRY_TTL_S
    )
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


def _start_request_from_retry(payload: Mapping[str, Any]) -> StartRequest | None:
    stored = get_store().get(str(payload.get("k")))
    if stored is None:
        return None
    content = json.loads(stored)
    return StartRequest(
        exam_id=int(payload["e"]),
        learner_id=int(payload["u"]),
        profile_name=str(payload["p"]),
        exam_url=content.get("exam_url"),
        access_code=content.get("access_code"),
        max_attempts=int(payload["m"]),
        language=str(payload["l"]),
        return_url=payload.get("r"),
    )


@bp.post("/exam/retry")
def retry() -> ResponseReturnValue:
    """The service-down page's Retry button: start or resume the attempt again."""
    payload = unsign("retry", request.form.get("token"), max_age_s=RETRY_TTL_S)
    req = _start_request_from_retry(payload) if payload else None
    exam = db.session.get(Exam, req.exam_id) if req else None
    learner = db.session.get(Learner, req.learner_id) if req else None
    profile = get_profiles(current_app).get(req.profile_name) if req else None
    if req is None or exam is None or learner is None or profile is None:
        return _error_page(
            400,
            "exam.retry_expired",
            "This retry link has expired",
            "Open the exam again from your course page.",
        )
    return _start(req, exam, learner, profile)


@bp.get("/exam/open/<token>")
def open_attempt(token: str) -> ResponseReturnValue:
    """The same attempt's wrapper page, opened in a new window (outside the LMS frame)."""
    payload = unsign("open", token, max_age_s=token_ttl())
    attempt = attempts.get_attempt(str(payload.get("a"))) if payload else None
    if payload is None or attempt is None:
        return _error_page(
            401,
            "exam.link_expired",
            "This link has expired",
            "Open the exam again from your course.",
        )
    exam = db.session.get(Exam, attempt.exam_id)
    assert exam is not None  # attempts go with their exam
    page = _page_context(exam, locale_or_lang=payload.get("l"), return_url=payload.get("r"))
    profile = get_profiles(current_app).get(attempt.profile_name)
    return _wrapper_page(attempt, page, profile)


# -- the page's API ------------------------------------------------------------------------------


def _api_error(status: int, code: str, message: str) -> Response:
    return _no_store(current_app.make_response(({"error": code, "message": message}, status)))


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
            return _api_error(401, "token.invalid", "The page's token is invalid or expired.")
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
        return _api_error(403, "attempt.start_proof_webhook", "The service confirms the start.")
    except AttemptStateError:
        return _api_error(409, "attempt.state_conflict", "This attempt cannot start again.")
    db.session.commit()
    return _no_store(current_app.make_response(_state_body(attempt)))


@bp.get("/exam/api/attempt/content")
@attempt_api
def attempt_content(attempt: Attempt) -> Response:
    """The exam URL and access code, only once the attempt has started."""
    content = attempts.revealed_content(attempt)
    if content is None:
        return _api_error(403, "attempt.not_started", "The exam opens once proctoring started.")
    return _no_store(current_app.make_response({**content, "token": api_token(attempt)}))


@bp.post("/exam/api/attempt/submitted")
@attempt_api
def attempt_submitted(attempt: Attempt) -> Response:
    """The page says the student submitted; the finish webhook remains the authority."""
    attempts.record_submitted(attempt, now=utcnow())
    db.session.commit()
    return _no_store(current_app.make_response(_state_body(attempt)))
