"""LTI routes: the OIDC login (/lti/login) and the launch (/lti/launch), routed in one place.

Views read the request and call lti.oidc / lti.launch. What a validated launch shows is decided
here only, by _respond_to_launch() with the role policy (lti.roles): the exam's starting page
(whose form starts the attempt at /exam/start), the instructor view, the deep-linking page, or a
refusal. A refusal stores nothing.
"""

from __future__ import annotations

from flask import Blueprint, current_app, make_response, request
from flask.typing import ResponseReturnValue

from lti_proctor.attempts.operations import parse_max_attempts
from lti_proctor.exam_settings import ExamUnavailableError, Owner, plan_student_launch
from lti_proctor.extensions import db
from lti_proctor.identity import (
    link_exam_settings,
    sync_exam_from_launch,
    sync_learner_from_launch,
)
from lti_proctor.lti.claims import MessageType
from lti_proctor.lti.context import LaunchContext
from lti_proctor.lti.errors import LaunchError
from lti_proctor.lti.launch import StorageCheckRequired, validate_launch
from lti_proctor.lti.oidc import (
    LaunchSettings,
    clear_state_cookie,
    start_login,
    state_cookie_name,
)
from lti_proctor.lti.registration_cache import has_uncommitted_changes
from lti_proctor.lti.registrations import DbToolConf
from lti_proctor.lti.roles import Destination, decide_destination
from lti_proctor.proctoring.errors import UnknownProfileError
from lti_proctor.proctoring.profiles import get_profiles, resolve_profile
from lti_proctor.proctoring.types import Profile
from lti_proctor.reasons import Reason
from lti_proctor.store import get_store
from lti_proctor.timeutil import utcnow
from lti_proctor.web import deep_link, exam, instructor, platform_storage
from lti_proctor.web.exam_page import origin_of, sdk_language
from lti_proctor.web.language import use_language

bp = Blueprint("lti", __name__)


def launch_settings() -> LaunchSettings:
    """The login/launch settings of the current app."""
    cfg = current_app.config
    return LaunchSettings(
        launch_url=cfg["BASE_URL"] + "/lti/launch",
        base_url=cfg["BASE_URL"],
        leeway_s=float(cfg["LTI_LEEWAY_S"]),
        nonce_ttl_s=float(cfg["LTI_NONCE_TTL_S"]),
        state_ttl_s=int(cfg["LTI_STATE_TTL_S"]),
        max_token_age_s=float(cfg["LTI_MAX_TOKEN_AGE_S"]),
        jwks_cache_s=float(cfg["LTI_JWKS_CACHE_S"]),
        jwks_refetch_cooldown_s=float(cfg["LTI_JWKS_REFETCH_COOLDOWN_S"]),
        http_timeout_s=float(cfg["LTI_HTTP_TIMEOUT_S"]),
        insecure_cookies=bool(cfg["DEV_INSECURE_COOKIES"]),
    )


@bp.route("/lti/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Third-party initiated login: send the browser to the platform's auth endpoint."""
    params = request.form if request.method == "POST" else request.args
    settings = launch_settings()
    login_redirect = start_login(
        params.to_dict(),
        request.cookies,
        secure=request.is_secure,
        tool_conf=DbToolConf(),
        store=get_store(),
        settings=settings,
    )
    return platform_storage.login_response(login_redirect, params.to_dict(), settings)


@bp.get("/lti/login/cookie")
def login_cookie() -> ResponseReturnValue:
    """Whether this browser sends a login's state cookie back (the storage page's fallback)."""
    state = request.args.get("state", "")
    sent = bool(state) and request.cookies.get(state_cookie_name(state)) == state
    return ("", 204, {"Cache-Control": "no-store"}) if sent else ("", 404)


@bp.post("/lti/launch")
def launch() -> ResponseReturnValue:
    """The platform's form_post of the id_token: validate it, then answer the launch."""
    settings = launch_settings()
    # Registrations come from a cache, so nothing else would reach the database before the
    # nonce is spent: take the connection first (the pool pings it), so a database outage
    # refuses the launch with its nonce intact and the outage page's "Try again" can post it
    # once more.
    db.session.connection()
    try:
        ctx = validate_launch(
            request.form.to_dict(),
            request.cookies,
            secure=request.is_secure,
            origin=request.headers.get("Origin"),
            tool_conf=DbToolConf(),
            store=get_store(),
            settings=settings,
        )
    except StorageCheckRequired as check:  # no cookie: read the state back from the LMS
        return platform_storage.launch_check_page(check, request.form["id_token"])
    if has_uncommitted_changes(db.session()):
        db.session.commit()  # a deployment learned at this first launch stays learned
    response = make_response(_respond_to_launch(ctx))
    clear_state_cookie(response, request.form["state"], insecure=settings.insecure_cookies)
    return response


def _respond_to_launch(ctx: LaunchContext) -> ResponseReturnValue:
    """Which page answers a validated launch: the one routing decision of the tool.

    Deep-linking requests get the exam form (web/deep_link.py); resource-link launches go by
    the role policy.
    """
    use_language(ctx.locale)  # every page of this launch speaks its language (kz/kk: Kazakh)
    if ctx.message_type == MessageType.DEEP_LINKING:
        return deep_link.respond_to_deep_linking(ctx)
    decision = decide_destination(
        ctx.roles, allow_teaching_assistants=ctx.allow_teaching_assistants
    )
    if decision.destination == Destination.INSTRUCTOR_VIEW:
        return instructor.respond_to_instructor_launch(ctx)
    if decision.destination == Destination.EXAM:
        return _exam_launch(ctx)
    raise LaunchError(
        Reason.ROLE_NOT_ALLOWED,
        f"role seen: {decision.seen}",
        next_step=decision.ask_for,
        return_url=ctx.return_url,
    )


def _exam_launch(ctx: LaunchContext) -> ResponseReturnValue:
    """A learner's launch: checked and stored here, answered at once with the starting page.

    The service call that starts or resumes the attempt follows from that page's POST to
    /exam/start, so the student sees progress while the service answers, not a blank frame.
    """
    now = utcnow()
    exam_row = sync_exam_from_launch(ctx, now=now, copy_ok=True)  # read-only unless it changed
    try:
        plan = plan_student_launch(
            launch_owner(ctx),
            ref=exam_ref(ctx),
            linked_id=exam_row.settings_id,
            custom=ctx.custom,
            now=now,
        )
    except ExamUnavailableError as exc:
        db.session.rollback()  # a refused launch stores nothing
        raise LaunchError(exc.reason, exc.detail) from exc
    profile = _profile_of(ctx, plan.profile_name)
    if plan.settings is not None:
        link_exam_settings(exam_row, plan.settings.id, now=now)
    learner = sync_learner_from_launch(ctx, now=now)
    req = exam.StartRequest(
        exam_id=exam_row.id,
        learner_id=learner.id,
        profile_name=profile.name,
        exam_url=plan.exam_url,
        access_code=plan.access_code,
        max_attempts=parse_max_attempts(str(plan.max_attempts or "")),
        language=sdk_language(ctx.locale),
        return_url=ctx.return_url if origin_of(ctx.return_url) else None,
    )
    exam.commit_keeping_rows()  # the rows the start reads; their values stay loaded here
    return exam.starting_page(req, exam_row, learner)


def launch_owner(ctx: LaunchContext) -> Owner:
    """The course a launch comes from, as exam settings are owned."""
    return Owner(ctx.platform_id, ctx.deployment_id, ctx.context_id or "")


def exam_ref(ctx: LaunchContext) -> str | None:
    """The link's opaque exam reference (custom `exam`), if it carries one."""
    return (ctx.custom.get("exam") or "").strip() or None


def _profile_of(ctx: LaunchContext, name: str | None) -> Profile:
    """The proctoring profile: the exam's, else the deployment default, else the default."""
    try:
        return resolve_profile(
            get_profiles(current_app),
            custom_name=name,
            deployment_default=ctx.default_profile,
            fallback=str(current_app.config.get("PROCTOR_DEFAULT_PROFILE") or "standard"),
        )
    except UnknownProfileError as exc:
        raise LaunchError(Reason.PROFILE_UNKNOWN, f"profile {exc.name!r}") from exc
