"""What the tool tells an LMS about itself: its URLs, scopes, claims and placements.

Builds the two documents an LMS reads to install the tool: the client registration that LTI
Dynamic Registration posts, and Canvas's developer-key JSON (/lti/config/canvas.json). Pure
functions of the tool's base URL and of what the platform says it supports; no Flask, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lti_proctor.lti.claims import MessageType

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PRIVACY_LEVEL = "https://canvas.instructure.com/lti/privacy_level"
CANVAS_VISIBILITY = "https://canvas.instructure.com/lti/visibility"
CANVAS_TOOL_ID = "https://canvas.instructure.com/lti/tool_id"
CANVAS_PLATFORM = "canvas.instructure.com"
TOOL_ID = "lti-proctor"

_AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM = _AGS + "lineitem"
SCOPE_SCORE = _AGS + "score"
SCOPE_RESULT_READONLY = _AGS + "result.readonly"
SCOPE_NRPS_READONLY = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
# The gradebook column needs line items and scores; results and the roster are read only.
SCOPES = (SCOPE_LINEITEM, SCOPE_SCORE, SCOPE_RESULT_READONLY, SCOPE_NRPS_READONLY)
# Names and email go on the proctoring report when the LMS shares them.
CLAIMS = ("iss", "sub", "name", "given_name", "family_name", "email")

_LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
TEACHING_ROLES = (
    _LIS + "membership#Instructor",
    _LIS + "membership#ContentDeveloper",
    _LIS + "institution/person#Administrator",
)
# Where each LMS offers the tool: deep linking to add an exam, the course menu for results.
CANVAS_DEEP_LINKING_PLACEMENTS = ("link_selection", "assignment_selection")
CANVAS_RESULTS_PLACEMENT = "course_navigation"
CANVAS_RESULTS_PERMISSIONS = "view_all_grades"  # teachers and TAs, never students
MOODLE_DEEP_LINKING_PLACEMENT = "ContentItemSelectionRequest"


@dataclass(frozen=True)
class ToolIdentity:
    """The tool as an LMS sees it: name, description and the URLs under its base URL."""

    base_url: str
    name: str = "TrustExam proctoring"
    description: str = (
        "Remote proctoring for exams: camera, screen and audio watched by TrustExam, "
        "with the proctoring status in the gradebook."
    )

    @property
    def domain(self) -> str:
        """The host (and port) every tool URL lives on."""
        return urlsplit(self.base_url).netloc

    @property
    def login_url(self) -> str:
        """The OIDC login initiation URL."""
        return self.base_url + "/lti/login"

    @property
    def launch_url(self) -> str:
        """The redirect URI and target link URI."""
        return self.base_url + "/lti/launch"

    @property
    def jwks_url(self) -> str:
        """The tool's public key set."""
        return self.base_url + "/.well-known/jwks.json"

    @property
    def logo_url(self) -> str:
        """The tool's logo."""
        return self.base_url + "/static/logo.svg"

    @property
    def register_url(self) -> str:
        """Where an LMS starts Dynamic Registration (an invite is appended)."""
        return self.base_url + "/lti/register"

    @property
    def canvas_config_url(self) -> str:
        """The Canvas developer-key JSON."""
        return self.base_url + "/lti/config/canvas.json"


@dataclass(frozen=True)
class PlatformOffer:
    """What a platform's configuration says it supports (scopes, messages and placements)."""

    family: str | None
    scopes: frozenset[str]
    messages: Mapping[str, tuple[str, ...] | None]  # type -> placements (None: not listed)


def granted_scopes(offer: PlatformOffer) -> list[str]:
    """The tool's scopes that the platform advertises, in the tool's order."""
    return [scope for scope in SCOPES if scope in offer.scopes]


def _placements(offer: PlatformOffer, message_type: str, wanted: Sequence[str]) -> list[str]:
    """The wanted placements the platform lists for message_type (all if it lists none)."""
    listed = offer.messages.get(message_type)
    if listed is None:
        return list(wanted)
    return [p for p in wanted if p in listed]


def registration_messages(tool: ToolIdentity, offer: PlatformOffer) -> list[dict[str, Any]]:
    """The LTI messages of the client registration, with each LMS's placements."""
    messages: list[dict[str, Any]] = []
    if MessageType.DEEP_LINKING in offer.messages:
        if offer.family == "canvas":
            wanted: Sequence[str] = CANVAS_DEEP_LINKING_PLACEMENTS
        else:
            advertised = offer.messages.get(MessageType.DEEP_LINKING) or ()
            wanted = advertised or (MOODLE_DEEP_LINKING_PLACEMENT,)
        message: dict[str, Any] = {
            "type": MessageType.DEEP_LINKING.value,
            "target_link_uri": tool.launch_url,
            "label": f"{tool.name}: add a proctored exam",
        }
        placements = _placements(offer, MessageType.DEEP_LINKING, wanted)
        if placements:
            message["placements"] = placements
        messages.append(message)
    if offer.family == "canvas" and _placements(
        offer, MessageType.RESOURCE_LINK, (CANVAS_RESULTS_PLACEMENT,)
    ):
        messages.append(
            {
                "type": MessageType.RESOURCE_LINK.value,
                "target_link_uri": tool.launch_url,
                "label": f"{tool.name}: results",
                "placements": [CANVAS_RESULTS_PLACEMENT],
                "roles": list(TEACHING_ROLES),
                CANVAS_VISIBILITY: "admins",
            }
        )
    return messages


def client_registration(tool: ToolIdentity, offer: PlatformOffer) -> dict[str, Any]:
    """The body Dynamic Registration posts to the platform's registration endpoint.

    Spec: https://www.imsglobal.org/spec/lti-dr/v1p0#tool-configuration
    """
    configuration: dict[str, Any] = {
        "domain": tool.domain,
        "description": tool.description,
        "target_link_uri": tool.launch_url,
        "claims": list(CLAIMS),
        "messages": registration_messages(tool, offer),
    }
    if offer.family == "canvas":
        configuration[CANVAS_PRIVACY_LEVEL] = "public"
        configuration[CANVAS_TOOL_ID] = TOOL_ID
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": tool.login_url,
        "redirect_uris": [tool.launch_url],
        "client_name": tool.name,
        "jwks_uri": tool.jwks_url,
        "logo_uri": tool.logo_url,
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(granted_scopes(offer)),
        TOOL_CONFIGURATION: configuration,
    }


def canvas_developer_key(tool: ToolIdentity) -> dict[str, Any]:
    """Canvas's LTI 1.3 developer-key JSON ("Enter URL" / "Paste JSON" configuration).

    Shape: https://canvas.instructure.com/doc/api/file.lti_dev_key_config.html
    """
    deep_linking = [
        {
            "placement": placement,
            "message_type": MessageType.DEEP_LINKING.value,
            "target_link_uri": tool.launch_url,
            "text": f"{tool.name}: add a proctored exam",
            "icon_url": tool.logo_url,
        }
        for placement in CANVAS_DEEP_LINKING_PLACEMENTS
    ]
    results = {
        "placement": CANVAS_RESULTS_PLACEMENT,
        "message_type": MessageType.RESOURCE_LINK.value,
        "target_link_uri": tool.launch_url,
        "text": f"{tool.name}: results",
        "icon_url": tool.logo_url,
        "visibility": "admins",
        "required_permissions": CANVAS_RESULTS_PERMISSIONS,
        "default": "disabled",
    }
    return {
        "title": tool.name,
        "description": tool.description,
        "oidc_initiation_url": tool.login_url,
        "target_link_uri": tool.launch_url,
        "public_jwk_url": tool.jwks_url,
        "scopes": list(SCOPES),
        "extensions": [
            {
                "platform": CANVAS_PLATFORM,
                "domain": tool.domain,
                "tool_id": TOOL_ID,
                "privacy_level": "public",
                "settings": {
                    "text": tool.name,
                    "icon_url": tool.logo_url,
                    "placements": [*deep_linking, results],
                },
            }
        ],
        "custom_fields": {},
    }
