"""Fake Moodle and Canvas platforms for LTI Dynamic Registration, served through `http`.

Shapes follow the LMSs' own code and docs: Moodle's mod/lti/openid-configuration.php and
openid-registration.php (registration_helper::registration_to_config/config_to_registration:
the answer carries the new tool type id as deployment_id), Canvas's
/api/lti/security/openid-configuration (needs the registration token) and /api/lti/registrations
(the answer echoes the registration with a client_id and no deployment id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import responses

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
JSON_UTF8 = "application/json; charset=utf-8"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MOODLE = "https://moodle.example.edu"
CANVAS_SCHOOL = "https://school.instructure.com"
CANVAS_SSO = "https://sso.canvaslms.com"
REG_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZWcifQ.c2lnbmF0dXJl"


def moodle_configuration(w: str = MOODLE) -> dict[str, Any]:
    """What Moodle 4.5's openid-configuration.php answers."""
    return {
        "issuer": w,
        "token_endpoint": f"{w}/mod/lti/token.php",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "jwks_uri": f"{w}/mod/lti/certs.php",
        "authorization_endpoint": f"{w}/mod/lti/auth.php",
        "registration_endpoint": f"{w}/mod/lti/openid-registration.php",
        "scopes_supported": [
            AGS + "lineitem",
            AGS + "lineitem.readonly",
            AGS + "result.readonly",
            AGS + "score",
            "https://purl.imsglobal.org/spec/lti-bo/scope/basicoutcome",
            NRPS_SCOPE,
            "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting",
            "openid",
        ],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
        PLATFORM_CONFIGURATION: {
            "product_family_code": "moodle",
            "version": "4.5 (Build: 20241007)",
            "messages_supported": [
                {"type": "LtiResourceLinkRequest"},
                {"type": "LtiDeepLinkingRequest", "placements": ["ContentArea"]},
            ],
            "variables": ["basic-lti-launch-request", "Context.id", "Person.email.primary"],
        },
    }


def canvas_configuration(school: str = CANVAS_SCHOOL) -> dict[str, Any]:
    """What Instructure-hosted Canvas's /api/lti/security/openid-configuration answers."""
    return {
        "issuer": "https://canvas.instructure.com",
        "authorization_endpoint": f"{CANVAS_SSO}/api/lti/authorize_redirect",
        "registration_endpoint": f"{school}/api/lti/registrations",
        "jwks_uri": f"{CANVAS_SSO}/api/lti/security/jwks",
        "token_endpoint": f"{CANVAS_SSO}/login/oauth2/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "scopes_supported": [
            AGS + "lineitem",
            AGS + "lineitem.readonly",
            AGS + "result.readonly",
            AGS + "score",
            NRPS_SCOPE,
            "https://canvas.instructure.com/lti/public_jwk/scope/update",
            "https://canvas.instructure.com/lti/account_lookup/scope/show",
            "https://canvas.instructure.com/lti-ags/progress/scope/show",
        ],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "picture", "email", "name", "given_name", "family_name"],
        "subject_types_supported": ["public"],
        "authorization_server": "sso.canvaslms.com",
        PLATFORM_CONFIGURATION: {
            "product_family_code": "canvas",
            "version": "vCloud",
            "messages_supported": [
                {
                    "type": "LtiResourceLinkRequest",
                    "placements": ["account_navigation", "course_navigation", "link_selection"],
                },
                {
                    "type": "LtiDeepLinkingRequest",
                    "placements": ["assignment_selection", "link_selection", "editor_button"],
                },
            ],
            "notice_types_supported": ["LtiHelloWorldNotice"],
            "variables": ["ResourceLink.id", "Canvas.environment.test"],
            "https://canvas.instructure.com/lti/account_name": "Example University",
            "https://canvas.instructure.com/lti/account_lti_guid": "pNu5F9EoIATW6:canvas-lms",
        },
    }


@dataclass
class FakeRegistrar:
    """A platform's configuration and registration endpoints, recording what the tool sent."""

    family: str
    config_url: str
    configuration: dict[str, Any]
    client_id: str
    deployment_id: str | None
    registrations: list[dict[str, Any]] = field(default_factory=list)
    used_tokens: set[str] = field(default_factory=set)

    @property
    def paste_params(self) -> dict[str, str]:
        """What the LMS appends to the pasted registration URL."""
        return {"openid_configuration": self.config_url, "registration_token": REG_TOKEN}

    def serve(self, http: responses.RequestsMock) -> FakeRegistrar:
        http.add_callback(responses.GET, self.config_url, callback=self._configuration)
        http.add_callback(
            responses.POST, self.configuration["registration_endpoint"], callback=self._register
        )
        return self

    def _bearer(self, request: Any) -> str | None:
        header = request.headers.get("Authorization", "")
        return header[7:] if header.startswith("Bearer ") else None

    def _configuration(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.family == "canvas" and self._bearer(request) != REG_TOKEN:
            body = {"errors": [{"message": "Invalid access token format"}]}
            return 401, {"Content-Type": "application/json"}, json.dumps(body)
        return 200, {"Content-Type": JSON_UTF8}, json.dumps(self.configuration)

    def _register(self, request: Any) -> tuple[int, dict[str, str], str]:
        token = self._bearer(request)
        if token is None:
            return 401, {}, "missing_registration_token"
        if token in self.used_tokens:
            return 401, {}, "token_already_used"
        body = json.loads(request.body)
        problem = _moodle_check(body)
        if problem:
            return 400, {}, problem
        self.used_tokens.add(token)
        self.registrations.append(body)
        answer = self._answer(body)
        return 200, {"Content-Type": JSON_UTF8}, json.dumps(answer)

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        tool = dict(body[TOOL_CONFIGURATION])
        if self.family == "canvas":
            return {
                **body,
                "client_id": self.client_id,
                TOOL_CONFIGURATION: tool,
                "https://canvas.instructure.com/lti/registration_config_url": (
                    f"{CANVAS_SCHOOL}/api/lti/registrations/1/view"
                ),
            }
        tool["deployment_id"] = self.deployment_id
        return {
            "client_id": self.client_id,
            "token_endpoint_auth_method": "private_key_jwt",
            "response_types": ["id_token"],
            "jwks_uri": body["jwks_uri"],
            "initiate_login_uri": body["initiate_login_uri"],
            "grant_types": ["client_credentials", "implicit"],
            "redirect_uris": body["redirect_uris"],
            "application_type": ["web"],
            "client_name": body["client_name"],
            "logo_uri": body.get("logo_uri", ""),
            "scope": body["scope"],
            TOOL_CONFIGURATION: tool,
        }


def _moodle_check(body: dict[str, Any]) -> str | None:
    """The checks Moodle's registration_to_config makes (Canvas refuses the same shapes)."""
    for name in ("response_types", "initiate_login_uri", "redirect_uris", "client_name"):
        if not body.get(name):
            return f"missing required attribute {name}"
    if "id_token" not in body["response_types"]:
        return "invalid_response_types"
    if body.get("token_endpoint_auth_method") != "private_key_jwt":
        return "invalid_token_endpoint_auth_method"
    if body.get("application_type") not in (None, "web"):
        return "invalid_application_type"
    if not isinstance(body.get(TOOL_CONFIGURATION), dict):
        return f"missing required attribute {TOOL_CONFIGURATION}"
    return None


def moodle_registrar(http: responses.RequestsMock, **overrides: Any) -> FakeRegistrar:
    """A Moodle at MOODLE that registers the tool as client Hs7kQ2b9XcY1mPz, tool type 3."""
    values: dict[str, Any] = {
        "family": "moodle",
        "config_url": f"{MOODLE}/mod/lti/openid-configuration.php",
        "configuration": moodle_configuration(),
        "client_id": "Hs7kQ2b9XcY1mPz",
        "deployment_id": "3",
    }
    values.update(overrides)
    return FakeRegistrar(**values).serve(http)


def canvas_registrar(http: responses.RequestsMock, **overrides: Any) -> FakeRegistrar:
    """An Instructure-hosted Canvas school that answers with client 10000000000042."""
    values: dict[str, Any] = {
        "family": "canvas",
        "config_url": f"{CANVAS_SCHOOL}/api/lti/security/openid-configuration",
        "configuration": canvas_configuration(),
        "client_id": "10000000000042",
        "deployment_id": None,
    }
    values.update(overrides)
    return FakeRegistrar(**values).serve(http)
