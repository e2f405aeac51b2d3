"""The role policy: every LIS role a Moodle or Canvas launch carries, and where it may go."""

from __future__ import annotations

import pytest

from lti_proctor.lti.roles import Destination, Role, decide_destination, reduce_roles

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
M = LIS + "membership#"
CANVAS_USER = LIS + "system/person#User"

# (name, Moodle-shaped roles claim, Canvas-shaped roles claim). Moodle sends one membership role
# (site admins also get the system and institution Administrator roles); Canvas adds an
# institution role and system/person#User, and a TA's membership#Instructor principal.
ROLES = {
    "learner": ([M + "Learner"], [LIS + "institution/person#Student", M + "Learner", CANVAS_USER]),
    "instructor": (
        [M + "Instructor"],
        [LIS + "institution/person#Instructor", M + "Instructor", CANVAS_USER],
    ),
    "course_admin": ([M + "Administrator"], [M + "Administrator", CANVAS_USER]),
    "site_admin_teaching": (
        [
            M + "Instructor",
            LIS + "system/person#Administrator",
            LIS + "institution/person#Administrator",
        ],
        [LIS + "institution/person#Administrator", M + "Instructor", CANVAS_USER],
    ),
    "teaching_assistant": (
        [LIS + "membership/Instructor#TeachingAssistant"],
        [M + "Instructor", LIS + "membership/Instructor#TeachingAssistant", CANVAS_USER],
    ),
    "community_ta": (
        [M + "Learner", LIS + "membership/Instructor#TeachingAssistant"],
        [M + "Learner", LIS + "membership/Instructor#TeachingAssistant", CANVAS_USER],
    ),
    "mentor": ([M + "Mentor"], [M + "Mentor", CANVAS_USER]),
    "guest": (
        [LIS + "institution/person#Guest"],
        [M + "Learner", LIS + "membership/Learner#GuestLearner", CANVAS_USER],
    ),
    "content_developer": ([M + "ContentDeveloper"], [M + "ContentDeveloper", CANVAS_USER]),
    "institution_admin": (
        [LIS + "system/person#Administrator", LIS + "institution/person#Administrator"],
        [LIS + "institution/person#Administrator", CANVAS_USER],
    ),
    "none": ([], [CANVAS_USER]),
}
# Where each goes: (TAs not allowed, TAs allowed by the deployment).
EXPECTED = {
    "learner": (Destination.EXAM, Destination.EXAM),
    "instructor": (Destination.INSTRUCTOR_VIEW, Destination.INSTRUCTOR_VIEW),
    "course_admin": (Destination.INSTRUCTOR_VIEW, Destination.INSTRUCTOR_VIEW),
    "site_admin_teaching": (Destination.INSTRUCTOR_VIEW, Destination.INSTRUCTOR_VIEW),
    "teaching_assistant": (Destination.REFUSED, Destination.INSTRUCTOR_VIEW),
    "community_ta": (Destination.EXAM, Destination.INSTRUCTOR_VIEW),
    "mentor": (Destination.REFUSED, Destination.REFUSED),
    "guest": (Destination.REFUSED, Destination.REFUSED),
    "content_developer": (Destination.REFUSED, Destination.REFUSED),
    "institution_admin": (Destination.REFUSED, Destination.REFUSED),
    "none": (Destination.REFUSED, Destination.REFUSED),
}
CASES = [
    (name, shape, uris[index], allowed)
    for name, uris in ROLES.items()
    for index, shape in enumerate(("moodle", "canvas"))
    for allowed in (False, True)
]


@pytest.mark.parametrize(("name", "shape", "uris", "allow_tas"), CASES)
def test_each_role_goes_where_the_policy_says(
    name: str, shape: str, uris: list[str], allow_tas: bool
) -> None:
    decision = decide_destination(reduce_roles(uris), allow_teaching_assistants=allow_tas)
    assert decision.destination is EXPECTED[name][allow_tas]
    if decision.destination is Destination.REFUSED:
        assert decision.seen and decision.ask_for.endswith(".")
    else:
        assert decision.seen == "" and decision.ask_for == ""


@pytest.mark.parametrize(
    ("uris", "seen"),
    [
        ([M + "Mentor"], "mentor or observer"),
        ([M + "ContentDeveloper"], "content developer (designer)"),
        ([LIS + "institution/person#Administrator"], "institution or system administrator"),
        ([LIS + "membership/Instructor#TeachingAssistant"], "teaching assistant"),
        ([], "no role"),
        (["http://example.com/roles#Custom"], "no role"),
    ],
)
def test_refusal_names_the_role_seen(uris: list[str], seen: str) -> None:
    assert decide_destination(reduce_roles(uris)).seen == seen


def test_teaching_assistant_refusal_says_what_to_ask_for() -> None:
    decision = decide_destination(reduce_roles([LIS + "membership/Instructor#TeachingAssistant"]))
    assert "administrator" in decision.ask_for and "deployment" in decision.ask_for


@pytest.mark.parametrize(
    ("uri", "role"),
    [
        ("Learner", Role.LEARNER),
        ("urn:lti:role:ims/lis/Instructor", Role.INSTRUCTOR),
        ("urn:lti:role:ims/lis/TeachingAssistant", Role.TEACHING_ASSISTANT),
        ("urn:lti:instrole:ims/lis/Administrator", Role.INSTITUTION_ADMIN),
        (LIS + "membership/Instructor#Lecturer", Role.INSTRUCTOR),
        (LIS + "system/person#SysAdmin", Role.INSTITUTION_ADMIN),
    ],
)
def test_short_names_legacy_urns_and_sub_roles_are_understood(uri: str, role: Role) -> None:
    assert reduce_roles([uri]) == {role}
