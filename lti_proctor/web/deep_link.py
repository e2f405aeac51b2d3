"""Deep linking: the exam form an instructor fills in inside the LMS frame, and its signed answer.

web/lti.py routes a validated LtiDeepLinkingRequest here; the request's context waits in the
shared store (exam_linking), the form posts back with only its key. A valid form stores the exam
and answers with a page that auto-posts the LtiDeepLinkingResponse (field `JWT`) to the LMS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue

import lti_proctor.exam_linking as exam_linking
from lti_proctor.exam_settings import Owner, SettingsErrors, parse_settings_form
from lti_proctor.extensions import db
from lti_proctor.lti.context import LaunchContext
from lti_proctor.lti.deep_linking import DeepLinkingError, parse_settings
from lti_proctor.lti.errors import LaunchError
from lti_proctor.lti.registrations import Platform
from lti_proctor.lti.roles import Destination, decide_destination
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.reasons import Reason
from lti_proctor.store import get_store
from lti_proctor.web.errors import error_response
from lti_proctor.web.exam_page import origin_of
from lti_proctor.web.language import gettext as _
from lti_proctor.web.language import use_language

bp = Blueprint("deep_link", __name__)


def respond_to_deep_linking(ctx: LaunchContext) -> ResponseReturnValue:
    """An LtiDeepLinkingRequest: the exam form, for those who may add exams to the course."""
    decision = decide_destination(
        ctx.roles, allow_teaching_assistants=ctx.allow_teaching_assistants
    )
    if decision.destination != Destination.INSTRUCTOR_VIEW:
        raise LaunchError(
            Reason.ROLE_NOT_ALLOWED,
            f"deep linking, role seen: {decision.seen}",
            next_step=_("Only the course's teachers can add a proctored exam."),
        )
    try:
        settings = parse_settings(ctx.deep_linking_settings)
        if not settings.accepts_resource_link:
            raise DeepLinkingError("no ltiResourceLink in accept_types")
    except DeepLinkingError as exc:
        raise LaunchError(Reason.DEEP_LINK_UNSUPPORTED, str(exc)) from exc
    dl = exam_linking.DeepLinkRequest(
        settings=settings,
        owner=Owner(ctx.platform_id, ctx.deployment_id, ctx.context_id or ""),
        user_sub=ctx.user_sub,
        locale=ctx.locale,
        origins=_origins(ctx.platform_id, [ctx.return_url, settings.return_url]),
    )
    key = exam_linking.open_request(get_store(), dl)
    return _form(key, dl, {"title": settings.title or ctx.resource_link_title or ""}, {})


@bp.post("/lti/deep-link/<key>")
def submit(key: str) -> ResponseReturnValue:
    """The exam form's submission: store the exam and auto-post the answer to the LMS."""
    store = get_store()
    dl = exam_linking.get_request(store, key)
    if dl is None:
        return _expired()
    use_language(dl.locale)
    form = request.form.to_dict()
    try:
        values = parse_settings_form(form, profiles=get_profiles(current_app))
    except SettingsErrors as exc:
        return _form(key, dl, form, exc.fields, status=400)
    launch_url = str(current_app.config["BASE_URL"]) + "/lti/launch"
    linked = exam_linking.link_exam(store, key, dl, values, launch_url=launch_url)
    if linked is None:
        return _expired()
    db.session.commit()
    html = render_template(
        "deep_link/return.html", return_url=linked.return_url, jwt=linked.jwt, title=values.title
    )
    return _secured(current_app.make_response(html), dl.origins, [linked.return_url])


def _origins(platform_id: int, urls: Iterable[str | None]) -> tuple[str, ...]:
    platform = db.session.get(Platform, platform_id)
    candidates = list(urls)
    if platform is not None:
        candidates += [platform.issuer, platform.auth_login_url]
    return tuple(dict.fromkeys(o for o in map(origin_of, candidates) if o))


def _form(
    key: str,
    dl: exam_linking.DeepLinkRequest,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    status: int = 200,
) -> Response:
    html = render_template(
        "deep_link/form.html",
        action=url_for("deep_link.submit", key=key),
        values=values,
        errors=errors,
        profiles=exam_linking.profile_choices(get_profiles(current_app)),
        default_profile=str(current_app.config.get("PROCTOR_DEFAULT_PROFILE") or "standard"),
        accept_lineitem=dl.settings.accept_lineitem,
    )
    return _secured(current_app.make_response((html, status)), dl.origins, [])


def _expired() -> Response:
    return error_response(
        Reason.DEEP_LINK_EXPIRED,
        400,
        shape="page",
        title=_("This form has expired"),
        message=_("Add the activity again from your course: the form is valid for 15 minutes."),
    )


def _secured(response: Response, origins: Iterable[str], post_to: Iterable[str]) -> Response:
    """No caching; framed only by the LMS; forms post only here or to the LMS's return URL."""
    targets = [o for o in map(origin_of, post_to) if o]
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            " ".join(["frame-ancestors 'self'", *origins]),
            "base-uri 'none'",
            " ".join(["form-action 'self'", *targets]),
        ]
    )
    return response
