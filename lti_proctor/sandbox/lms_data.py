"""The sandbox LMS's seeded data, and its id_token claims built the way Moodle 4.5 and Canvas do.

Key order, claim names, URL shapes and quirks follow Moodle's mod/lti (lti_build_request,
lti_sign_jwt) and Canvas's Lti::Messages::ResourceLinkRequest/DeepLinkingRequest, as captured in
tests/fixtures/launches/. Pure functions of the seeded data; no Flask, no state.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
_MEMBER = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
BOS = "https://purl.imsglobal.org/spec/lti-bos/claim/basicoutcomesservice"
INST = "https://www.instructure.com/"
LIS_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/"
RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING = "LtiDeepLinkingRequest"

AGS_SCOPES_MOODLE = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
]
AGS_SCOPES_CANVAS = [
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
]
# Canvas serialises its claim objects with these two members (ActiveModel validation leftovers).
_CANVAS_NOISE: dict[str, Any] = {"validation_context": None, "errors": {"errors": {}}}


@dataclass
class SandboxUser:
    """A seeded user; on Moodle sub = login_hint = user id, on Canvas sub is a UUID."""

    key: str
    lms_id: str
    sub: str
    login_hint: str
    username: str
    name: str
    given_name: str
    family_name: str
    email: str
    roles: list[str]
    is_instructor: bool
    sesskey: str = ""


@dataclass
class SandboxResourceLink:
    """A seeded tool link (a Moodle activity / a Canvas assignment) with its line item."""

    key: str
    id: str
    title: str
    description: str
    custom: dict[str, str] = field(default_factory=dict)
    cmid: int = 5
    lineitem_id: str = "7"
    assignment_id: int = 1
    points: float = 100.0
    graded: bool = True  # False: added by deep linking without a lineItem (no gradebook column)


@dataclass
class SandboxCourse:
    """The seeded course; Canvas also has an opaque context id."""

    id: str
    label: str
    title: str
    context_id: str


@dataclass
class Site:
    """Who the LMS is and where its endpoints live."""

    family: str
    base_url: str
    issuer: str
    client_id: str
    deployment_id: str
    target_link_uri: str
    guid: str
    name: str
    nrps: bool = False
    dl_title: str = "Proctored exam"


@dataclass
class Message:
    """One launch being built: who, what, and the request values the LMS adds."""

    site: Site
    course: SandboxCourse
    user: SandboxUser
    link: SandboxResourceLink | None
    message_type: str
    nonce: str
    iat: int
    launch_number: int = 0
    dl_data: str = ""
    locale: str = "en"

    @property
    def w(self) -> str:
        return self.site.base_url


def build_claims(msg: Message, *, outcome_salt: str = "sandbox") -> dict[str, Any]:
    """The id_token body of a launch, for the site's LMS family."""
    if msg.site.family == "canvas":
        return _canvas(msg)
    return _moodle(msg, outcome_salt)


def _moodle(msg: Message, salt: str) -> dict[str, Any]:
    w, site, user, course, link = msg.w, msg.site, msg.user, msg.course, msg.link
    body: dict[str, Any] = {
        "nonce": msg.nonce,
        "iat": msg.iat,
        "exp": msg.iat + 60,
        "iss": site.issuer,
        "aud": site.client_id,
        LTI + "deployment_id": site.deployment_id,
        LTI + "target_link_uri": site.target_link_uri,
        "sub": user.sub,
        LTI + "lis": {"person_sourcedid": "", "course_section_sourcedid": ""},
        LTI + "roles": list(user.roles),
        LTI + "context": {
            "id": course.id,
            "label": course.label,
            "title": course.title,
            "type": ["CourseSection"],
        },
    }
    if msg.message_type == RESOURCE_LINK and link is not None:
        body[LTI + "resource_link"] = {
            "title": link.title,
            "description": link.description,
            "id": link.id,
        }
        body[BOS] = {
            "lis_result_sourcedid": _moodle_sourcedid(msg, link, salt),
            "lis_outcome_service_url": f"{w}/mod/lti/service.php",
        }
    body.update(
        {
            "given_name": user.given_name,
            "family_name": user.family_name,
            "name": user.name,
            LTI + "ext": {"user_username": user.username, "lms": "moodle-2"},
            "email": user.email,
            LTI + "launch_presentation": _moodle_presentation(msg),
            LTI + "tool_platform": {
                "family_code": "moodle",
                "version": "2024100700",
                "guid": site.guid,
                "name": site.name,
                "description": "Moodle LMS",
            },
        }
    )
    if link is not None and link.custom and msg.message_type == RESOURCE_LINK:
        body[LTI + "custom"] = dict(link.custom)
    body[LTI + "version"] = "1.3.0"
    body[LTI + "message_type"] = msg.message_type
    body[AGS] = _moodle_ags(msg)
    if site.nrps:
        body[NRPS] = {
            "context_memberships_url": f"{w}/mod/lti/services.php/CourseSection/{course.id}"
            f"/bindings/{site.deployment_id}/memberships",
            "service_versions": ["1.0", "2.0"],
        }
    if msg.message_type == DEEP_LINKING:
        body[DL] = _moodle_dl(msg)
    return body


def _moodle_presentation(msg: Message) -> dict[str, str]:
    if msg.message_type == DEEP_LINKING or msg.link is None:
        return {"locale": msg.locale}
    return {
        "locale": msg.locale,
        "document_target": "iframe",
        "return_url": f"{msg.w}/mod/lti/return.php?course={msg.course.id}&launch_container=3"
        f"&instanceid={msg.link.id}&sesskey={msg.user.sesskey}",
    }


def _moodle_ags(msg: Message) -> dict[str, Any]:
    base = f"{msg.w}/mod/lti/services.php/{msg.course.id}/lineitems"
    type_id = msg.site.deployment_id
    claim: dict[str, Any] = {
        "scope": list(AGS_SCOPES_MOODLE),
        "lineitems": f"{base}?type_id={type_id}",
    }
    if msg.message_type == RESOURCE_LINK and msg.link is not None and msg.link.graded:
        claim["lineitem"] = f"{base}/{msg.link.lineitem_id}/lineitem?type_id={type_id}"
    return claim


def _moodle_sourcedid(msg: Message, link: SandboxResourceLink, salt: str) -> str:
    data = {
        "instanceid": link.id,
        "userid": msg.user.lms_id,
        "typeid": msg.site.deployment_id,
        "launchid": msg.launch_number,
    }
    packed = json.dumps(data, separators=(",", ":"))
    digest = hashlib.sha256((packed + salt).encode()).hexdigest()
    return json.dumps({"data": data, "hash": digest}, separators=(",", ":"))


def _moodle_dl(msg: Message) -> dict[str, Any]:
    return {
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["frame", "iframe", "window"],
        "accept_copy_advice": False,
        "accept_multiple": True,
        "accept_unsigned": False,
        "auto_create": False,
        "can_confirm": False,
        "deep_link_return_url": f"{msg.w}/mod/lti/contentitem_return.php?course="
        f"{msg.course.id}&id={msg.site.deployment_id}&sesskey={msg.user.sesskey}",
        "title": msg.site.dl_title,
        "text": "",
    }


def _canvas(msg: Message) -> dict[str, Any]:
    w, site, user, course, link = msg.w, msg.site, msg.user, msg.course, msg.link
    body: dict[str, Any] = {
        LTI + "message_type": msg.message_type,
        LTI + "version": "1.3.0",
    }
    if msg.message_type == RESOURCE_LINK and link is not None:
        body[LTI + "resource_link"] = {
            "id": link.id,
            "description": link.description,
            "title": link.title,
            **_CANVAS_NOISE,
        }
        ags: dict[str, Any] = {
            "scope": list(AGS_SCOPES_CANVAS),
            "lineitems": f"{w}/api/lti/courses/{course.id}/line_items",
        }
        if link.graded:
            ags["lineitem"] = f"{w}/api/lti/courses/{course.id}/line_items/{link.lineitem_id}"
        body[AGS] = {**ags, **_CANVAS_NOISE}
    else:
        body[DL] = _canvas_dl(msg)
    body.update(
        {
            "aud": site.client_id,
            "azp": site.client_id,
            LTI + "deployment_id": site.deployment_id,
            "exp": msg.iat + 3600,
            "iat": msg.iat,
            "iss": site.issuer,
            "nonce": msg.nonce,
            "sub": user.sub,
            LTI + "target_link_uri": site.target_link_uri,
            LTI + "lti11_legacy_user_id": user.login_hint,
            "picture": f"{w}/images/messages/avatar-50.png",
            "email": user.email,
            "name": user.name,
            "given_name": user.given_name,
            "family_name": user.family_name,
            LTI + "lis": {
                "person_sourcedid": "$Person.sourcedId",
                "course_offering_sourcedid": "$CourseSection.sourcedId",
                **_CANVAS_NOISE,
            },
            LTI + "context": {
                "id": course.context_id,
                "label": course.label,
                "title": course.title,
                "type": [LIS_ROLE + "course#CourseOffering"],
                **_CANVAS_NOISE,
            },
            LTI + "tool_platform": {
                "guid": site.guid,
                "name": site.name,
                "version": "cloud",
                "product_family_code": "canvas",
                **_CANVAS_NOISE,
            },
            LTI + "launch_presentation": {
                "document_target": "iframe",
                "return_url": f"{w}/courses/{course.id}/external_content/success/"
                "external_tool_redirect",
                "locale": msg.locale,
                **_CANVAS_NOISE,
            },
            "locale": msg.locale,
            LTI + "roles": list(user.roles),
            LTI + "custom": dict(link.custom) if link and msg.message_type == RESOURCE_LINK else {},
        }
    )
    if site.nrps:
        body[NRPS] = {
            "context_memberships_url": f"{w}/api/lti/courses/{course.id}/names_and_roles",
            "service_versions": ["2.0"],
            **_CANVAS_NOISE,
        }
    body.update(_canvas_extensions(msg))
    body["errors"] = {"errors": {}}
    return body


def _canvas_dl(msg: Message) -> dict[str, Any]:
    return {
        "deep_link_return_url": f"{msg.w}/courses/{msg.course.id}/deep_linking_response"
        f"?data={msg.dl_data}",
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "accept_media_types": "application/vnd.ims.lti.v1.ltilink",
        "auto_create": False,
        "accept_multiple": False,
        **_CANVAS_NOISE,
    }


def _canvas_extensions(msg: Message) -> dict[str, Any]:
    ext: dict[str, Any] = {
        INST + "canvas_user_id": int(msg.user.lms_id),
        INST + "canvas_user_login_id": msg.user.username,
        INST + "canvas_api_domain": urlsplit(msg.w).netloc,
        INST + "canvas_course_id": int(msg.course.id),
        INST + "canvas_workflow_state": "available",
        INST + "lis_course_offering_sourcedid": "$CourseSection.sourcedId",
        INST + "canvas_enrollment_state": "active",
    }
    if msg.message_type == RESOURCE_LINK and msg.link is not None:
        ext[INST + "canvas_assignment_id"] = msg.link.assignment_id
        ext[INST + "canvas_assignment_title"] = msg.link.title
        ext[INST + "canvas_assignment_points_possible"] = msg.link.points
    else:
        ext[INST + "placement"] = "assignment_selection"
    return ext


def seed(
    family: str,
) -> tuple[SandboxCourse, dict[str, SandboxUser], dict[str, SandboxResourceLink]]:
    """Course PROC101, student1, teacher1, a few more students and "Final exam (proctored)",
    with each LMS's ids."""
    canvas = family == "canvas"
    course = SandboxCourse(
        id="1" if canvas else "2",
        label="PROC101",
        title="Proctored Exams 101",
        context_id="e1a232a098ca4a42f2e719069b499ce90d778063" if canvas else "2",
    )
    users = {
        "student": _user(canvas, student=True),
        "instructor": _user(canvas, student=False),
    }
    for number, (given, family_name) in enumerate(EXTRA_STUDENTS, start=2):
        extra = _extra_student(canvas, number, given, family_name)
        users[extra.key] = extra
    link = SandboxResourceLink(
        key="final",
        id="98b3107f-76cb-52cd-88b5-053a068d5c83" if canvas else "1",
        title="Final exam (proctored)",
        description="Proctored final exam. Webcam required.",
        lineitem_id="1" if canvas else "7",
    )
    return course, users, {"final": link}


# Students who are enrolled but may never launch: NRPS lists them ("not started" rows).
EXTRA_STUDENTS = (("Alex", "Abdrakhmanov"), ("Dana", "Ivanova"), ("Kim", "Lee"))


def _extra_student(canvas: bool, number: int, given: str, family_name: str) -> SandboxUser:
    """studentN: ids after the seeded users' (Canvas subs are UUIDs, hints 40 hex digits)."""
    lms_id = str(3 + number)
    username = f"student{number}"
    if canvas:
        sub = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-canvas-user-{lms_id}"))
        hint = hashlib.sha1(f"sandbox-canvas-user-{lms_id}".encode()).hexdigest()
        roles = [
            LIS_ROLE + "institution/person#Student",
            _MEMBER + "Learner",
            LIS_ROLE + "system/person#User",
        ]
        sesskey = ""
    else:
        sub = hint = lms_id
        roles = [_MEMBER + "Learner"]
        sesskey = hashlib.sha1(username.encode()).hexdigest()[:10]
    return SandboxUser(
        key=username,
        lms_id=lms_id,
        sub=sub,
        login_hint=hint,
        username=username,
        name=f"{given} {family_name}",
        given_name=given,
        family_name=family_name,
        email=f"{username}@example.edu",
        roles=roles,
        is_instructor=False,
        sesskey=sesskey,
    )


def _user(canvas: bool, *, student: bool) -> SandboxUser:
    names = ("Sam", "Student", "student1") if student else ("Terry", "Teacher", "teacher1")
    given, family_name, username = names
    if canvas:
        inst = "Student" if student else "Instructor"
        lms_id = "2" if student else "3"
        sub = (
            "21d25588-d4a9-51d7-a462-eb54278140c8"
            if student
            else "85cee29e-5a5c-5aad-8640-8ba7d5b2bf61"
        )
        hint = (
            "084555453cc67d02627c8ce444d52e0bddbd32a2"
            if student
            else "74a0a041e593406c1ce100409da787d5c63ad329"
        )
        roles = [
            LIS_ROLE + f"institution/person#{inst}",
            _MEMBER + ("Learner" if student else "Instructor"),
            LIS_ROLE + "system/person#User",
        ]
        sesskey = ""
    else:
        lms_id = sub = hint = "3" if student else "4"
        roles = [_MEMBER + ("Learner" if student else "Instructor")]
        sesskey = "77e29c6e3f" if student else "98e49259a5"
    return SandboxUser(
        key="student" if student else "instructor",
        lms_id=lms_id,
        sub=sub,
        login_hint=hint,
        username=username,
        name=f"{given} {family_name}",
        given_name=given,
        family_name=family_name,
        email=f"{username}@example.edu",
        roles=roles,
        is_instructor=not student,
        sesskey=sesskey,
    )
