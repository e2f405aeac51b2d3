"""The sandbox LMS: an LTI 1.3 platform stand-in shaped like Moodle 4.5 or Canvas, for the demo
and end-to-end tests.

create_sandbox_lms() builds a Flask app with its own RSA key, a JWKS, the login initiation (an
auto-posted form to the tool's /lti/login with the exact parameters the LMS sends), the OIDC auth
endpoint (checks, then an auto-posted id_token + state to the tool) and seeded data: course
PROC101, a student, an instructor and the link "Final exam (proctored)". The seeded data lives on
app.extensions["sandbox_lms"] (a SandboxLms); launch routes are one blueprint, so a gradebook
blueprint (token endpoint, line items, scores) can join the same app. A single-process dev
stand-in: its pending launches live in process memory, which is fine here and nowhere else.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Flask, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue
from jwt.algorithms import RSAAlgorithm

from lti_proctor.sandbox.lms_data import (
    DEEP_LINKING,
    RESOURCE_LINK,
    Message,
    SandboxResourceLink,
    SandboxUser,
    Site,
    build_claims,
    seed,
)

EXTENSION = "sandbox_lms"
FAMILIES = ("moodle", "canvas")
CANVAS_ISSUER = "https://canvas.instructure.com"
Fields = list[tuple[str, str]]


@dataclass(frozen=True)
class PendingLaunch:
    """A launch the LMS started (login initiation sent) and awaits at its auth endpoint."""

    user_key: str
    link_key: str | None
    message_type: str
    launch_number: int


class SandboxLms:
    """The sandbox platform: identity, key, seeded course, users and links, pending launches."""

    def __init__(self, site: Site, *, tool_login_url: str, redirect_uris: list[str]) -> None:
        self.site = site
        self.tool_login_url = tool_login_url
        self.redirect_uris = redirect_uris
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = _kid(site.family)
        self._hint_secret = secrets.token_bytes(32)
        self.course, self.users, self.links = seed(site.family)
        self._pending: dict[str, PendingLaunch] = {}
        self._lock = threading.Lock()

    @property
    def family(self) -> str:
        """moodle or canvas."""
        return self.site.family

    def url(self, path: str) -> str:
        """An absolute URL on the sandbox."""
        return self.site.base_url + path

    @property
    def auth_login_url(self) -> str:
        """The OIDC auth endpoint tools redirect to."""
        if self.family == "canvas":
            return self.url("/api/lti/authorize_redirect")
        return self.url("/mod/lti/auth.php")

    @property
    def key_set_url(self) -> str:
        """The platform JWKS."""
        return self.url(
            "/api/lti/security/jwks" if self.family == "canvas" else "/mod/lti/certs.php"
        )

    @property
    def auth_token_url(self) -> str:
        """The OAuth2 token endpoint (served by the gradebook blueprint, lms_gradebook.py)."""
        return self.url("/login/oauth2/token" if self.family == "canvas" else "/mod/lti/token.php")

    def describe(self) -> dict[str, str | None]:
        """What an admin registers in the tool: Platform columns plus the deployment id."""
        return {
            "name": f"Sandbox {self.family.capitalize()}",
            "family": self.family,
            "issuer": self.site.issuer,
            "client_id": self.site.client_id,
            "deployment_id": self.site.deployment_id,
            "auth_login_url": self.auth_login_url,
            "auth_token_url": self.auth_token_url,
            "key_set_url": self.key_set_url,
            "auth_audience": None,
        }

    def jwks(self) -> dict[str, Any]:
        """The public key set, as the LMS publishes it."""
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "alg": "RS256", "kid": self.kid, "use": "sig"}]}

    def add_resource_link(
        self, key: str, *, title: str, description: str = "", custom: dict[str, str] | None = None
    ) -> SandboxResourceLink:
        """Seed another tool link in the course (ids continue the LMS's own numbering)."""
        number = len(self.links) + 1
        link = SandboxResourceLink(
            key=key,
            id=str(number) if self.family == "moodle" else secrets.token_hex(16),
            title=title,
            description=description,
            custom=dict(custom or {}),
            cmid=4 + number,
            lineitem_id=str(6 + number) if self.family == "moodle" else str(number),
            assignment_id=number,
        )
        self.links[key] = link
        return link

    def login_initiation(
        self, user_key: str, link_key: str | None, message_type: str = RESOURCE_LINK
    ) -> list[tuple[str, str]]:
        """The form fields the LMS posts to the tool's login URL, in the LMS's order."""
        user = self.users[user_key]
        pending = PendingLaunch(user_key, link_key, message_type, secrets.randbelow(10**9))
        if self.family == "canvas":
            return self._canvas_initiation(user, pending)
        return self._moodle_initiation(user, pending)

    def _moodle_initiation(
        self, user: SandboxUser, pending: PendingLaunch
    ) -> list[tuple[str, str]]:
        digits = f"{secrets.randbelow(9 * 10**9) + 10**9}"
        hint_data: dict[str, Any]
        if pending.message_type == DEEP_LINKING:
            launch_id = f"ltilaunch_ContentItemSelectionRequest{digits}"
            hint_data = {"launchid": launch_id}
        else:
            link = self.links[pending.link_key or ""]
            launch_id = f"ltilaunch{link.id}_{digits}"
            hint_data = {"cmid": link.cmid, "launchid": launch_id}
        hint = json.dumps(hint_data, separators=(",", ":"))
        self._remember(launch_id, pending)
        return [
            ("iss", self.site.issuer),
            ("target_link_uri", self.site.target_link_uri),
            ("login_hint", user.login_hint),
            ("lti_message_hint", hint),
            ("client_id", self.site.client_id),
            ("lti_deployment_id", self.site.deployment_id),
        ]

    def _canvas_initiation(
        self, user: SandboxUser, pending: PendingLaunch
    ) -> list[tuple[str, str]]:
        verifier = secrets.token_hex(64)
        self._remember(verifier, pending)
        hint = jwt.encode(
            {
                "verifier": verifier,
                "canvas_domain": urlsplit(self.site.base_url).netloc,
                "context_type": "Course",
                "context_id": int(self.course.id),
                "canvas_locale": "en",
                "include_storage_target": True,
                "exp": int(time.time()) + 300,
            },
            self._hint_secret,
            algorithm="HS256",
        )
        return [
            ("iss", self.site.issuer),
            ("login_hint", user.login_hint),
            ("client_id", self.site.client_id),
            ("deployment_id", self.site.deployment_id),
            ("target_link_uri", self.site.target_link_uri),
            ("lti_message_hint", hint),
            ("canvas_environment", "prod"),
            ("canvas_region", "not_configured"),
        ]

    def _remember(self, launch_id: str, pending: PendingLaunch) -> None:
        with self._lock:
            self._pending[launch_id] = pending

    def take_pending(self, message_hint: str) -> PendingLaunch | None:
        """The launch an lti_message_hint refers to, removed (each launch id works once)."""
        launch_id = self._launch_id(message_hint)
        with self._lock:
            return self._pending.pop(launch_id, None) if launch_id else None

    def _launch_id(self, message_hint: str) -> str | None:
        try:
            if self.family == "canvas":
                claims = jwt.decode(message_hint, self._hint_secret, algorithms=["HS256"])
                return str(claims["verifier"])
            return str(json.loads(message_hint)["launchid"])
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            return None

    def id_token(self, pending: PendingLaunch, *, nonce: str) -> str:
        """The signed id_token of a pending launch."""
        claims = self.claims(pending, nonce=nonce, iat=int(time.time()))
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"}
        )

    def claims(self, pending: PendingLaunch, *, nonce: str, iat: int) -> dict[str, Any]:
        """The id_token body of a pending launch."""
        link = self.links[pending.link_key] if pending.link_key else None
        msg = Message(
            site=self.site,
            course=self.course,
            user=self.users[pending.user_key],
            link=link,
            message_type=pending.message_type,
            nonce=nonce,
            iat=iat,
            launch_number=pending.launch_number,
            dl_data=self._dl_data() if pending.message_type == DEEP_LINKING else "",
        )
        return build_claims(msg)

    def _dl_data(self) -> str:
        """Canvas's signed `data` for the deep-linking return; passed back unchanged."""
        return jwt.encode(
            {"deep_link_return_url_data": secrets.token_hex(8)}, self._hint_secret, "HS256"
        )


def _kid(family: str) -> str:
    """Canvas names keys by ISO 8601 time; Moodle by 20 hex characters."""
    if family == "canvas":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return secrets.token_hex(10)


def get_sandbox_lms(app: Flask | None = None) -> SandboxLms:
    """The SandboxLms of app (default: the current app)."""
    target = app or current_app
    lms: SandboxLms = target.extensions[EXTENSION]
    return lms


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
        "sandbox_lms/frame.html", lms=lms, link=lms.links[link_key], user=lms.users[user_key]
    )


def launch(link_key: str, user_key: str) -> ResponseReturnValue:
    """Login initiation of a resource-link launch: an auto-posted form to the tool's login."""
    lms = _lms()
    if link_key not in lms.links or user_key not in lms.users:
        return render_template("sandbox_lms/error.html", error="not_found"), 404
    fields = lms.login_initiation(user_key, link_key, RESOURCE_LINK)
    return _autopost(lms.tool_login_url, fields, form_id=_initiation_form(lms))


def deep_link(user_key: str) -> ResponseReturnValue:
    """Login initiation of a deep-linking request (adding the tool to the course)."""
    lms = _lms()
    if user_key not in lms.users or not lms.users[user_key].is_instructor:
        return render_template("sandbox_lms/error.html", error="not_found"), 404
    fields = lms.login_initiation(user_key, None, DEEP_LINKING)
    return _autopost(lms.tool_login_url, fields, form_id=_initiation_form(lms))


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
) -> Flask:
    """A sandbox Moodle or Canvas at base_url, launching the tool at tool_url."""
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
    # Imported here: both modules build on this one.
    from lti_proctor.sandbox.lms_gradebook import register_gradebook
    from lti_proctor.sandbox.lms_quiz import register_quiz
    from lti_proctor.sandbox.lms_registration import register_registration

    register_gradebook(app, tool_url=tool_url)
    register_quiz(app)
    register_registration(app)
    return app
