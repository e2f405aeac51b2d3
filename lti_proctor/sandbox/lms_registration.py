"""The sandbox LMS's side of LTI Dynamic Registration, in Moodle's or Canvas's shape.

An admin page where a tool's registration URL is pasted (Moodle: Manage tools > Tool URL, which
goes through startltiadvregistration.php; Canvas: Developer Keys > LTI Registration, which
frames the tool directly), the platform's OpenID configuration (Moodle's public
openid-configuration.php; Canvas's /api/lti/security/openid-configuration behind the
registration token) and the registration endpoint (Moodle answers with the new tool type id as
deployment_id; Canvas with none). A registration switches the sandbox's launches to the new
client id, deployment and tool URLs. Development stand-in: state lives in process memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
from flask import Blueprint, Flask, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from lti_proctor.sandbox.lms_platform import SandboxLms, get_sandbox_lms

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
REGISTRATIONS = "sandbox_lms_registrations"
_AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCOPES = [_AGS + "lineitem", _AGS + "lineitem.readonly", _AGS + "result.readonly", _AGS + "score"]
PATHS = {
    "moodle": {
        "admin": "/mod/lti/toolconfigure.php",
        "start": "/mod/lti/startltiadvregistration.php",
        "configuration": "/mod/lti/openid-configuration.php",
        "registration": "/mod/lti/openid-registration.php",
    },
    "canvas": {
        "admin": "/accounts/1/developer_keys",
        "configuration": "/api/lti/security/openid-configuration",
        "registration": "/api/lti/registrations",
    },
}


@dataclass
class Registrations:
    """Registration tokens handed out (single use) and the registrations made."""

    lms: SandboxLms
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: set[str] = field(default_factory=set)
    made: list[dict[str, Any]] = field(default_factory=list)

    def path(self, name: str) -> str:
        """This family's URL path for an endpoint."""
        return PATHS[self.lms.family][name]

    def token(self) -> str:
        """A registration token: a JWT signed with the platform key, as Moodle makes them."""
        now = int(time.time())
        claims = {"sub": secrets.token_hex(8), "scope": "reg", "iat": now, "exp": now + 3600}
        value = jwt.encode(claims, self.lms.key, algorithm="RS256", headers={"kid": self.lms.kid})
        with self.lock:
            self.issued.add(value)
        return value

    def take(self, value: str) -> bool:
        """Spend a registration token; False when unknown, used or expired."""
        with self.lock:
            if value not in self.issued:
                return False
            self.issued.discard(value)
        try:
            jwt.decode(value, self.lms.key.public_key(), algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return True


def _registrations() -> Registrations:
    from flask import current_app

    found: Registrations = current_app.extensions[REGISTRATIONS]
    return found


def with_params(url: str, params: dict[str, str]) -> str:
    """url with params appended to its query (which it may already have)."""
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


def configuration(lms: SandboxLms) -> dict[str, Any]:
    """The platform's OpenID configuration, as this LMS family serves it."""
    reg = PATHS[lms.family]["registration"]
    if lms.family == "canvas":
        lti: dict[str, Any] = {
            "product_family_code": "canvas",
            "version": "vCloud",
            "messages_supported": [
                {
                    "type": "LtiResourceLinkRequest",
                    "placements": ["course_navigation", "link_selection", "assignment_menu"],
                },
                {
                    "type": "LtiDeepLinkingRequest",
                    "placements": ["assignment_selection", "link_selection", "editor_button"],
                },
            ],
            "variables": ["ResourceLink.id", "Canvas.course.id"],
            "https://canvas.instructure.com/lti/account_name": lms.site.name,
        }
        claims = ["sub", "picture", "email", "name", "given_name", "family_name", "locale"]
        subjects = ["public"]
    else:
        lti = {
            "product_family_code": "moodle",
            "version": "4.5 (Build: 20241007)",
            "messages_supported": [
                {"type": "LtiResourceLinkRequest"},
                {"type": "LtiDeepLinkingRequest", "placements": ["ContentArea"]},
            ],
            "variables": ["Context.id", "Person.email.primary"],
        }
        claims = ["sub", "iss", "name", "given_name", "family_name", "email"]
        subjects = ["public", "pairwise"]
    return {
        "issuer": lms.site.issuer,
        "token_endpoint": lms.auth_token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "jwks_uri": lms.key_set_url,
        "authorization_endpoint": lms.auth_login_url,
        "registration_endpoint": lms.url(reg),
        "scopes_supported": [*SCOPES, _NRPS, "openid"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": subjects,
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": claims,
        PLATFORM_CONFIGURATION: lti,
    }


def _problem(body: Any) -> str | None:
    """What Moodle's registration_to_config refuses (Canvas refuses the same shapes)."""
    if not isinstance(body, dict):
        return "invalid_registration"
    for name in ("response_types", "initiate_login_uri", "redirect_uris", "client_name"):
        if not body.get(name):
            return f"missing required attribute {name}"
    if "id_token" not in body["response_types"]:
        return "invalid_response_types"
    if not isinstance(body["redirect_uris"], list):
        return "invalid_redirect_uris"
    if body.get("token_endpoint_auth_method") != "private_key_jwt":
        return "invalid_token_endpoint_auth_method"
    if body.get("application_type") not in (None, "web"):
        return "invalid_application_type"
    if not isinstance(body.get(TOOL_CONFIGURATION), dict):
        return f"missing required attribute {TOOL_CONFIGURATION}"
    return None


def apply_registration(app: Flask, body: dict[str, Any]) -> dict[str, Any]:
    """Install the tool from its registration: new client id and deployment; the answer."""
    from lti_proctor.sandbox.lms_gradebook import GRADEBOOK

    lms, regs = get_sandbox_lms(app), app.extensions[REGISTRATIONS]
    number = len(regs.made) + 2  # the seeded registration is the first
    tool = dict(body[TOOL_CONFIGURATION])
    if lms.family == "canvas":
        client_id = str(10000000000000 + number)
        deployment_id = f"{number}:{secrets.token_hex(20)}"
    else:
        client_id = secrets.token_urlsafe(12)[:15]
        deployment_id = str(number)
    site = lms.site
    site.client_id, site.deployment_id = client_id, deployment_id
    site.target_link_uri = tool.get("target_link_uri") or site.target_link_uri
    lms.tool_login_url = body["initiate_login_uri"]
    lms.redirect_uris = list(body["redirect_uris"])
    app.extensions[GRADEBOOK].auth.client_id = client_id
    regs.made.append({"client_id": client_id, "deployment_id": deployment_id, "body": body})
    if lms.family == "canvas":
        return {**body, "client_id": client_id}  # the deployment id comes with the first launch
    tool["deployment_id"] = deployment_id
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": "private_key_jwt",
        "response_types": ["id_token"],
        "jwks_uri": body.get("jwks_uri"),
        "initiate_login_uri": body["initiate_login_uri"],
        "grant_types": ["client_credentials", "implicit"],
        "redirect_uris": body["redirect_uris"],
        "application_type": ["web"],
        "client_name": body["client_name"],
        "logo_uri": body.get("logo_uri", ""),
        "scope": body.get("scope", ""),
        TOOL_CONFIGURATION: tool,
    }


def admin_page() -> ResponseReturnValue:
    """The admin page: paste a registration URL; it then opens in a frame."""
    regs = _registrations()
    frame_url = None
    pasted = (request.form.get("url") or "").strip()
    if request.method == "POST" and pasted:
        if urlsplit(pasted).scheme not in ("http", "https"):
            abort(400)
        if regs.lms.family == "canvas":
            frame_url = with_params(pasted, _params(regs))
        else:
            frame_url = regs.lms.url(regs.path("start")) + "?" + urlencode({"url": pasted})
    return render_template(
        "sandbox_lms/register.html", lms=regs.lms, frame_url=frame_url, made=regs.made
    )


def _params(regs: Registrations) -> dict[str, str]:
    return {
        "openid_configuration": regs.lms.url(regs.path("configuration")),
        "registration_token": regs.token(),
    }


def start_registration() -> ResponseReturnValue:
    """Moodle's startltiadvregistration.php: redirect to the tool with the two parameters."""
    from flask import redirect

    regs = _registrations()
    url = request.args.get("url", "")
    if urlsplit(url).scheme not in ("http", "https"):
        abort(400)
    return redirect(with_params(url, _params(regs)))


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def openid_configuration() -> ResponseReturnValue:
    """The platform configuration (Canvas wants the registration token; Moodle serves it)."""
    regs = _registrations()
    if regs.lms.family == "canvas":
        token = _bearer()
        if token is None or token not in regs.issued:
            return jsonify({"errors": [{"message": "Invalid access token format"}]}), 401
    return jsonify(configuration(regs.lms))


def register() -> ResponseReturnValue:
    """The registration endpoint: check the token and the body, install, answer."""
    from flask import current_app

    regs = _registrations()
    token = _bearer()
    if token is None:
        return "missing_registration_token", 401
    if not regs.take(token):
        return "token_already_used", 401
    body = request.get_json(silent=True)
    problem = _problem(body)
    if problem is not None or not isinstance(body, dict):
        return problem or "invalid_registration", 400
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return jsonify(apply_registration(app, body))


def register_registration(app: Flask) -> Registrations:
    """Add the admin registration page and the Dynamic Registration endpoints to the app."""
    lms = get_sandbox_lms(app)
    regs = Registrations(lms)
    app.extensions[REGISTRATIONS] = regs
    bp = Blueprint("sandbox_lms_registration", __name__)
    paths = PATHS[lms.family]
    bp.add_url_rule(paths["admin"], "admin", admin_page, methods=["GET", "POST"])
    bp.add_url_rule(paths["configuration"], "configuration", openid_configuration)
    bp.add_url_rule(paths["registration"], "register", register, methods=["POST"])
    if "start" in paths:
        bp.add_url_rule(paths["start"], "start", start_registration)
    app.register_blueprint(bp)
    return regs
