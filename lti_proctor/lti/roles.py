"""The role policy: which LIS roles a launch carries, and where each combination may go.

Pure and LTI-only (no database, no Flask): lti/launch.py reduces the roles claim to Role values,
web/lti.py asks decide_destination() where a launch goes. Learners take the exam; instructors
and course administrators see the instructor view; teaching assistants see it only where the
deployment allows them; everyone else (mentors, guests, content developers, institution or
system administrators without a course role, no role at all) is refused with a readable 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from lti_proctor.i18n import N_


class Role(StrEnum):
    """The tool's view of a LIS role; every role URI reduces to at most one of these."""

    LEARNER = "learner"
    INSTRUCTOR = "instructor"
    ADMIN = "admin"  # the course (context) administrator
    TEACHING_ASSISTANT = "teaching_assistant"
    CONTENT_DEVELOPER = "content_developer"
    MENTOR = "mentor"
    GUEST = "guest"
    INSTITUTION_ADMIN = "institution_admin"  # institution or system administrator


class Destination(StrEnum):
    """Where a validated launch goes."""

    EXAM = "exam"
    INSTRUCTOR_VIEW = "instructor_view"
    REFUSED = "refused"


_LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
_MEMBERSHIP = _LIS + "membership#"
_LEGACY = "urn:lti:role:ims/lis/"  # LTI 1.1 context role URNs some platforms still send
# Spec: LTI 1.3 core, appendix A.2 (role vocabularies). Short names ("Learner") are the
# deprecated simple context role names. Canvas adds institution/person#Student and
# system/person#User to a student's membership#Learner; neither changes the destination.
_PRINCIPAL: dict[str, Role] = {
    "Learner": Role.LEARNER,
    "Instructor": Role.INSTRUCTOR,
    "Administrator": Role.ADMIN,
    "TeachingAssistant": Role.TEACHING_ASSISTANT,
    "ContentDeveloper": Role.CONTENT_DEVELOPER,
    "Mentor": Role.MENTOR,
}
_INSTITUTION: dict[str, Role] = {
    _LIS + "institution/person#Administrator": Role.INSTITUTION_ADMIN,
    _LIS + "system/person#Administrator": Role.INSTITUTION_ADMIN,
    _LIS + "system/person#SysAdmin": Role.INSTITUTION_ADMIN,
    _LIS + "institution/person#Guest": Role.GUEST,
    _LIS + "institution/person#Observer": Role.MENTOR,
    "urn:lti:instrole:ims/lis/Administrator": Role.INSTITUTION_ADMIN,
    "urn:lti:sysrole:ims/lis/Administrator": Role.INSTITUTION_ADMIN,
    "urn:lti:sysrole:ims/lis/SysAdmin": Role.INSTITUTION_ADMIN,
    "urn:lti:instrole:ims/lis/Observer": Role.MENTOR,
}
# Sub-roles (membership/<Principal>#<Sub>) that change what their principal means.
_TA_SUBROLES = ("TeachingAssistant",)  # TeachingAssistant, ...Section, ...Group, ...Offering
_GUEST_SUBROLES = ("GuestLearner", "GuestInstructor")

_LABELS: dict[Role, str] = {
    Role.LEARNER: "student (Learner)",
    Role.INSTRUCTOR: "teacher (Instructor)",
    Role.ADMIN: "course administrator",
    Role.TEACHING_ASSISTANT: "teaching assistant",
    Role.CONTENT_DEVELOPER: "content developer (designer)",
    Role.MENTOR: "mentor or observer",
    Role.GUEST: "guest",
    Role.INSTITUTION_ADMIN: "institution or system administrator",
}


def reduce_role(uri: str) -> Role | None:
    """One role URI (full, LTI 1.1 URN or short name) as a Role; None when it grants nothing."""
    if uri in _INSTITUTION:
        return _INSTITUTION[uri]
    for prefix in (_MEMBERSHIP, _LEGACY, ""):
        if uri.startswith(prefix) and uri[len(prefix) :] in _PRINCIPAL:
            return _PRINCIPAL[uri[len(prefix) :]]
    if uri.startswith(_LIS + "membership/"):
        principal, _, sub = uri[len(_LIS + "membership/") :].partition("#")
        if sub.startswith(_TA_SUBROLES):
            return Role.TEACHING_ASSISTANT
        if sub in _GUEST_SUBROLES:
            return Role.GUEST
        return _PRINCIPAL.get(principal)
    return None


def reduce_roles(uris: Iterable[str]) -> frozenset[Role]:
    """The launch's roles claim as Roles.

    A teaching-assistant or guest sub-role qualifies the principal role sent with it (Canvas
    sends a TA as membership#Instructor plus membership/Instructor#TeachingAssistant), so that
    principal role does not count on its own.
    """
    roles = {role for role in map(reduce_role, uris) if role is not None}
    if Role.TEACHING_ASSISTANT in roles:
        roles.discard(Role.INSTRUCTOR)
    if Role.GUEST in roles and _has_guest_subrole(uris):
        roles -= {Role.LEARNER, Role.INSTRUCTOR}
    return frozenset(roles)


def _has_guest_subrole(uris: Iterable[str]) -> bool:
    return any(uri.rpartition("#")[2] in _GUEST_SUBROLES for uri in uris)


@dataclass(frozen=True)
class RoleDecision:
    """Where a launch goes, and for a refusal which roles were seen and what to ask for."""

    destination: Destination
    seen: str = ""
    ask_for: str = ""


def decide_destination(
    roles: frozenset[Role], *, allow_teaching_assistants: bool = False
) -> RoleDecision:
    """Where a resource-link launch with these roles goes (teaching roles before Learner)."""
    if roles & {Role.INSTRUCTOR, Role.ADMIN}:
        return RoleDecision(Destination.INSTRUCTOR_VIEW)
    if Role.TEACHING_ASSISTANT in roles and allow_teaching_assistants:
        return RoleDecision(Destination.INSTRUCTOR_VIEW)
    if Role.LEARNER in roles:
        return RoleDecision(Destination.EXAM)
    return RoleDecision(Destination.REFUSED, seen=describe_roles(roles), ask_for=_ask_for(roles))


def describe_roles(roles: frozenset[Role]) -> str:
    """The roles in plain words, for the refusal page ("no role" when there is none)."""
    words = [_LABELS[role] for role in Role if role in roles]
    return ", ".join(words) if words else "no role"


def _ask_for(roles: frozenset[Role]) -> str:
    # N_: the refusal page translates the sentence it shows.
    if Role.TEACHING_ASSISTANT in roles:
        return N_(
            "Teaching assistants see proctoring results only where the tool's administrator "
            "allowed it for this LMS deployment: ask your instructor or LMS administrator. "
            "To take the exam, ask to be enrolled as a student."
        )
    return N_(
        "To take the exam, ask your instructor to enrol you in this course as a student; "
        "to see proctoring results, ask to be made a teacher of the course."
    )
