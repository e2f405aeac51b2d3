"""LTI claim URIs, message types, and the reduction of LIS role URIs to the tool's three roles."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
RESOURCE_LINK = LTI + "resource_link"
ROLES = LTI + "roles"
CONTEXT = LTI + "context"
TOOL_PLATFORM = LTI + "tool_platform"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
CUSTOM = LTI + "custom"
LIS = LTI + "lis"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"

LTI_VERSION = "1.3.0"


class MessageType(StrEnum):
    """Message types the tool accepts."""

    RESOURCE_LINK = "LtiResourceLinkRequest"
    DEEP_LINKING = "LtiDeepLinkingRequest"


class Role(StrEnum):
    """The tool's own roles; every LIS role URI reduces to at most one of these."""

    LEARNER = "learner"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"


_LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
# Spec: LTI 1.3 core, appendix A.2 (role vocabularies). Short names ("Learner") are legacy
# forms some platforms still send in context roles.
_ROLE_MAP: dict[str, Role] = {
    _LIS + "membership#Learner": Role.LEARNER,
    _LIS + "membership#Instructor": Role.INSTRUCTOR,
    _LIS + "membership#ContentDeveloper": Role.INSTRUCTOR,
    _LIS + "membership#Administrator": Role.ADMIN,
    _LIS + "membership/Instructor#TeachingAssistant": Role.INSTRUCTOR,
    _LIS + "institution/person#Administrator": Role.ADMIN,
    _LIS + "system/person#Administrator": Role.ADMIN,
    _LIS + "system/person#SysAdmin": Role.ADMIN,
    "Learner": Role.LEARNER,
    "Instructor": Role.INSTRUCTOR,
    "Administrator": Role.ADMIN,
}


def reduce_roles(uris: Iterable[str]) -> frozenset[Role]:
    """Map LIS role URIs to the tool's roles; institution roles alone grant nothing but admin."""
    return frozenset(_ROLE_MAP[u] for u in uris if u in _ROLE_MAP)
