"""The sandbox LMS: an LTI 1.3 platform stand-in shaped like Moodle 4.5 or Canvas, for the demo
and end-to-end tests.

create_sandbox_lms() builds a Flask app with its own RSA key, a JWKS, the login initiation (an
auto-posted form to the tool's /lti/login with the exact parameters the LMS sends), the OIDC auth
endpoint (checks, then an auto-posted id_token + state to the tool) and seeded data: course
PROC101, a student, an instructor and the link "Final exam (proctored)". The seeded data lives on
app.extensions["sandbox_lms"] (a SandboxLms, lms_platform.py); launch routes are one blueprint, and
the gradebook (token endpoint, line items, scores), deep-linking return, NRPS (when nrps=True) and
quiz blueprints join the same app. A
single-process dev stand-in: its pending launches live in process memory, which is fine here and
nowhere else.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Flask, redirect, render_template, request
from flask.typing import ResponseReturnValue

from lti_proctor.sandbox.lms_data import (
    DEEP_LINKING,
    RESOURCE_LINK,
    Site,
)
from lti_proctor.sandbox.lms_deep_linking import register_deep_linking
from lti_proctor.sandbox.lms_gradebook import register_gradebook
from lti_proctor.sandbox.lms_nrps import register_nrps
from lti_proctor.sandbox.lms_oauth import KeySetFetcher
from lti_proctor.sandbox.lms_platform import (
    CANVAS_ISSUER,
    EXTENSION,
    FAMILIES,
    STORAGE_FRAME,
    SandboxLms,
    get_sandbox_lms,
)
from lti_proctor.sandbox.lms_quiz import register_quiz
from lti_proctor.sandbox.lms_registration import register_registration

LOCALES = ["en", "ru", "kk"]  # the languages the sandbox's users can have


def _lms() -> SandboxLms:
    return get_sandbox_lms()


def index() -> ResponseReturnValue:
    """The course page: launch links and what to register in the tool."""
    lms = _lms()
    return render_template("sandbox_lms/index.html", lms=lms, registration=lms.describe())


def course_frame(link_key: str, user_key: str) -> ResponseReturnValue:
    """The activity as the LMS shows it: the tool inside an iframe."""
    lms = _lms()
    if link_key not in lms.links or user_key not in lms.users:
        return render_template("sandbox_lms/error.html", error="not_found"), 404
    return render_template(
        "sandbox_lms/frame.html",
        lms=lms,
        link=lms.links[link_key],
        user=lms.users[user_key],
        storage_frame=STORAGE_FRAME if lms.family == "canvas" else None,
    )


def launch(link_key: str, user_key: str) -> ResponseReturnValue:
    """Login initiation of a resource-link launch: an auto-posted form to the tool's login."""
    lms = _lms()
    if link_key not in lms.links or user_key not in lms.users:
        return render_template("sandbox_lms/error.html", error="not_found"), 404
    framed = request.args.get("framed") == "1"  # inside course_frame, next to its storage frame
    fields = lms.login_initiation(
        user_key, link_key, RESOURCE_LINK, locale=_user_locale(), framed=framed
    )
    return _autopost(lms.tool_login_url, fields, form_id=_initiation_form(lms))


def _user_locale() -> str:
    """The user's LMS language: here the browser's (a real LMS uses the profile's), else en."""
    primaries = (tag.lower().replace("_", "-").split("-")[0] for tag, _ in request.accept_languages)
    return next((tag for tag in primaries if tag in LOCALES), "en")


def deep_link(user_key: str) -> ResponseReturnValue:
    """Login initiation of a deep-linking request (adding the tool to the course)."""
    lms = _lms()
    if user_key not in lms.users or not lms.users[user_key].is_instructor:
        return render_template("sandbox_lms/error.html", error="not_found"), 404
    fields = lms.login_initiation(user_key, None, DEEP_LINKING)
    return _autopost(lms.tool_login_url, fields, form_id=_initiation_form(lms))


def post_message_forwarding() -> ResponseReturnValue:
    """Canvas's storage frame: keeps tools' put_data values (per tool origin) for get_data."""
    return render_template("sandbox_lms/forwarding.html")


def jwks() -> ResponseReturnValue:
    """The platform's public keys."""
    return _lms().jwks()


def authorize_redirect() -> ResponseReturnValue:
    """Canvas: the sso host hands the auth request on to the institution's /api/lti/authorize."""
    return redirect(_lms().url("/api/lti/authorize") + "?" + urlencode(request.values.to_dict()))


def authorize() -> ResponseReturnValue:
    """OIDC auth endpoint: check the request, then auto-post id_token + state to redirect_uri."""
    lms, values = _lms(), request.values.to_dict()
    if values.get("client_id") != lms.site.client_id:
        return render_template("sandbox_lms/error.html", error="unauthorized_client"), 400
    redirect_uri = values.get("redirect_uri", "")
    if redirect_uri not in lms.redirect_uris:
        return render_template("sandbox_lms/error.html", error="invalid_redirect_uri"), 400
    fields = _auth_answer(lms, values)
    return _autopost(redirect_uri, fields, form_id="ltiAuthForm")


def _auth_answer(lms: SandboxLms, values: dict[str, str]) -> list[tuple[str, str]]:
    """id_token + state, or error + error_description + state (as Moodle's auth.php answers)."""
    state = values.get("state", "")
    problem = _auth_problem(lms, values)
    pending = lms.take_pending(values.get("lti_message_hint", "")) if problem is None else None
    if problem is None and pending is None:
        problem = ("invalid_request", "unknown or already used lti_message_hint")
    if problem is None and pending is not None:
        if lms.users[pending.user_key].login_hint != values.get("login_hint"):
            problem = ("access_denied", "login_hint is not the user who launched")
    if problem is not None or pending is None:
        error, description = problem or ("invalid_request", "")
        return [("error", error), ("error_description", description), ("state", state)]
    return [("id_token", lms.id_token(pending, nonce=values["nonce"])), ("state", state)]


def _auth_problem(lms: SandboxLms, values: dict[str, str]) -> tuple[str, str] | None:
    for name in ("scope", "response_type", "login_hint", "nonce", "lti_message_hint"):
        if not values.get(name):
            return "invalid_request", f"missing {name}"
    if values["scope"] != "openid":
        return "invalid_scope", "scope must be openid"
    if values["response_type"] != "id_token":
        return "unsupported_response_type", "response_type must be id_token"
    if values.get("response_mode") != "form_post":
        return "invalid_request", "Invalid response_mode"
    allowed_prompts = ("none",) if lms.family == "canvas" else ("none", "")
    if values.get("prompt", "") not in allowed_prompts:
        return "invalid_request", "Invalid prompt"
    return None


def _initiation_form(lms: SandboxLms) -> str:
    return "tool_form" if lms.family == "canvas" else "ltiInitiateLoginForm"


def _autopost(action: str, fields: list[tuple[str, str]], *, form_id: str) -> str:
    return render_template(
        "sandbox_lms/autopost.html", action=action, fields=fields, form_id=form_id
    )


def _launch_blueprint(family: str) -> Blueprint:
    """The launch routes, at the URL shapes of the LMS family."""
    bp = Blueprint(EXTENSION, __name__)
    bp.add_url_rule("/", "index", index)
    bp.add_url_rule("/course/<link_key>/<user_key>", "course_frame", course_frame)
    bp.add_url_rule("/launch/<link_key>/<user_key>", "launch", launch)
    bp.add_url_rule("/deep-link/<user_key>", "deep_link", deep_link)
    bp.add_url_rule("/post_message_forwarding", "post_message_forwarding", post_message_forwarding)
    both = ["GET", "POST"]
    if family == "canvas":
        bp.add_url_rule("/api/lti/security/jwks", "jwks", jwks)
        bp.add_url_rule(
            "/api/lti/authorize_redirect", "authorize_redirect", authorize_redirect, methods=both
        )
        bp.add_url_rule("/api/lti/authorize", "authorize", authorize, methods=both)
    else:
        bp.add_url_rule("/mod/lti/certs.php", "jwks", jwks)
        bp.add_url_rule("/mod/lti/auth.php", "authorize", authorize, methods=both)
    return bp


def create_sandbox_lms(
    *,
    base_url: str,
    tool_url: str,
    family: str = "moodle",
    issuer: str | None = None,
    client_id: str | None = None,
    deployment_id: str | None = None,
    login_path: str = "/lti/login",
    launch_path: str = "/lti/launch",
    nrps: bool = False,
    custom: dict[str, str] | None = None,
    fetch_tool_jwks: KeySetFetcher | None = None,
) -> Flask:
    """A sandbox Moodle or Canvas at base_url, launching the tool at tool_url (whose JWKS it reads
    from there, unless fetch_tool_jwks hands the keys over: a test's in-process stand-in)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    base_url, tool_url = base_url.rstrip("/"), tool_url.rstrip("/")
    canvas = family == "canvas"
    site = Site(
        family=family,
        base_url=base_url,
        issuer=issuer or (CANVAS_ISSUER if canvas else base_url),
        client_id=client_id or ("10000000000001" if canvas else "qJFGPTxkK5WNQyx"),
        deployment_id=deployment_id
        or ("1:e1a232a098ca4a42f2e719069b499ce90d778063" if canvas else "1"),
        target_link_uri=tool_url + launch_path,
        guid="7f82efc3ab6c18278fc85a6b768cb2742ef34177:canvas-lms"
        if canvas
        else "60a810f8df0f0fdfd00eb02dd857ca06",
        name="Example University" if canvas else "Moodle",
        nrps=nrps,
    )
    lms = SandboxLms(
        site, tool_login_url=tool_url + login_path, redirect_uris=[tool_url + launch_path]
    )
    if custom:
        lms.links["final"].custom = dict(custom)
    app = Flask(__name__)
    app.extensions[EXTENSION] = lms
    app.register_blueprint(_launch_blueprint(family))
    register_gradebook(app, tool_url=tool_url, fetch_tool_jwks=fetch_tool_jwks)
    register_deep_linking(app)
    register_nrps(app)
    register_quiz(app)
    register_registration(app)
    return app
