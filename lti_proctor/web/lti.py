"""LTI routes: the OIDC login (/lti/login), the launch (/lti/launch) and the launch error page.

Views read the request and call lti.oidc / lti.launch; what a validated launch shows is decided in
one place, _respond_to_launch(), which hands resource-link launches to the exam page.
"""

from __future__ import annotations

from flask import Blueprint, current_app, make_response, render_template, request
from flask.typing import ResponseReturnValue

from lti_proctor.extensions import db
from lti_proctor.lti.claims import MessageType
from lti_proctor.lti.launch import LaunchContext, validate_launch
from lti_proctor.lti.oidc import LaunchSettings, clear_state_cookie, start_login
from lti_proctor.lti.registrations import DbToolConf
from lti_proctor.store import get_store
from lti_proctor.web import exam

bp = Blueprint("lti", __name__)


def launch_settings() -> LaunchSettings:
    """The login/launch settings of the current app."""
    cfg = current_app.config
    return LaunchSettings(
        launch_url=cfg["BASE_URL"] + "/lti/launch",
        leeway_s=float(cfg["LTI_LEEWAY_S"]),
        nonce_ttl_s=float(cfg["LTI_NONCE_TTL_S"]),
        state_ttl_s=int(cfg["LTI_STATE_TTL_S"]),
        jwks_cache_s=float(cfg["LTI_JWKS_CACHE_S"]),
        http_timeout_s=float(cfg["LTI_HTTP_TIMEOUT_S"]),
        insecure_cookies=bool(cfg["DEV_INSECURE_COOKIES"]),
    )


@bp.route("/lti/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Third-party initiated login: send the browser to the platform's auth endpoint."""
    params = request.form if request.method == "POST" else request.args
    return start_login(
        params.to_dict(),
        request.cookies,
        secure=request.is_secure,
        tool_conf=DbToolConf(),
        store=get_store(),
        settings=launch_settings(),
    )


@bp.post("/lti/launch")
def launch() -> ResponseReturnValue:
    """The platform's form_post of the id_token: validate it, then answer the launch."""
    settings = launch_settings()
    ctx = validate_launch(
        request.form.to_dict(),
        request.cookies,
        secure=request.is_secure,
        tool_conf=DbToolConf(),
        store=get_store(),
        settings=settings,
    )
    db.session.commit()  # a deployment learned at this first launch stays learned
    response = make_response(_respond_to_launch(ctx))
    clear_state_cookie(response, request.form["state"], insecure=settings.insecure_cookies)
    return response


def _respond_to_launch(ctx: LaunchContext) -> ResponseReturnValue:
    """What a validated launch shows: the exam (or instructor view) for a resource link.

    Deep-linking requests validate but have no content-selection step yet; they show the
    launch's context so an admin can see the registration works.
    """
    if ctx.message_type == MessageType.DEEP_LINKING:
        return render_template("lti/launched.html", ctx=ctx)
    return exam.respond_to_launch(ctx)
