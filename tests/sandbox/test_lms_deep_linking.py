"""Deep linking and NRPS through the running demo: the instructor adds an exam from the sandbox
LMS's course page, the LMS checks the tool's answer and shows the new link; the LMS's NRPS pages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from lti_proctor.demo import ACCESS_CODE, PROFILE, RunningDemo, start_demo
from lti_proctor.extensions import db
from lti_proctor.lti.keys import get_signing_key
from lti_proctor.sandbox.lms_data import LTI
from lti_proctor.sandbox.lms_gradebook import get_gradebook
from lti_proctor.sandbox.lms_platform import get_sandbox_lms
from lti_proctor.sandbox.lms_quiz import quiz_url
from tests.live import Browser, Page

CT_NRPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"


@pytest.fixture(params=["moodle", "canvas"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningDemo]:
    overrides = {"INSTANCE_PATH": str(tmp_path / "instance")}
    with start_demo(port_base=0, family=request.param, overrides=overrides) as running:
        yield running


def exam_form(demo: RunningDemo, title: str) -> dict[str, str]:
    return {
        "title": title,
        "exam_url": quiz_url(demo.urls.lms),
        "access_code": ACCESS_CODE,
        "profile": PROFILE,
        "max_attempts": "1",
        "opens_at": "",
        "closes_at": "",
    }


def tool_answer(browser: Browser, demo: RunningDemo, title: str) -> tuple[str, str]:
    """The instructor picks "Add a proctored exam", fills in the tool's form; (return URL, JWT)."""
    course = browser.open(demo.urls.lms + "/")
    form_page = browser.open(course.link("Add the tool to the course"))
    assert form_page.status == 200, form_page.text[:400]
    form = next(f for f in form_page.forms if "/lti/deep-link/" in f.action)
    done = Page(
        browser.session.post(
            urljoin(form_page.url, form.action), data=exam_form(demo, title), timeout=10
        )
    )
    assert done.status == 200, done.text[:400]
    answer = next(f for f in done.forms if f.id == "deep-link-return")
    return answer.action, dict(answer.fields)["JWT"]


def titles(demo: RunningDemo) -> list[str]:
    return [link.title for link in get_sandbox_lms(demo.lms_app).links.values()]


def test_instructor_adds_an_exam_and_a_student_launches_it(demo: RunningDemo) -> None:
    browser = Browser()
    return_url, token = tool_answer(browser, demo, "Midterm (proctored)")
    lms = get_sandbox_lms(demo.lms_app)
    if demo.family == "canvas":
        assert return_url.startswith(demo.urls.lms + "/courses/1/deep_linking_response?data=")
    else:
        assert return_url.startswith(demo.urls.lms + "/mod/lti/contentitem_return.php?course=2")

    course = Page(browser.session.post(return_url, data={"JWT": token}, timeout=10))

    assert course.status == 200 and course.url == demo.urls.lms + "/"
    assert "Midterm (proctored)" in course.text
    link = next(link for link in lms.links.values() if link.title == "Midterm (proctored)")
    assert set(link.custom) == {"exam"}
    column = get_gradebook(demo.lms_app).get_item(int(link.lineitem_id))
    assert column.resource_link_id == link.id
    assert column.score_maximum > 0 and "Midterm (proctored)" in column.label

    exam = browser.open(f"{demo.urls.lms}/course/{link.key}/student")
    assert exam.status == 200, exam.text[:400]
    assert 'id="exam-app"' in exam.text


def test_a_response_signed_with_another_key_is_refused(demo: RunningDemo) -> None:
    browser = Browser()
    return_url, token = tool_answer(browser, demo, "Forged exam")
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"]})
    before = titles(demo)

    refused = browser.session.post(return_url, data={"JWT": forged}, timeout=10)

    assert refused.status_code == 400
    assert "The sandbox LMS refused the request" in refused.text
    assert titles(demo) == before


@pytest.mark.parametrize(
    ("claim", "value"),
    [("aud", "https://elsewhere.example"), (LTI + "message_type", "LtiResourceLinkRequest")],
)
def test_a_response_with_a_wrong_claim_is_refused(
    demo: RunningDemo, claim: str, value: str
) -> None:
    """Re-signed with the tool's own key, so only the claim is wrong."""
    browser = Browser()
    return_url, token = tool_answer(browser, demo, "Odd exam")
    claims = {**jwt.decode(token, options={"verify_signature": False}), claim: value}
    resigned = _resign(demo, token, claims)
    before = titles(demo)

    refused = browser.session.post(return_url, data={"JWT": resigned}, timeout=10)

    assert refused.status_code == 400
    assert titles(demo) == before


def test_a_replayed_response_is_refused_by_canvas_only(demo: RunningDemo) -> None:
    browser = Browser()
    return_url, token = tool_answer(browser, demo, "Quiz one")
    assert browser.session.post(return_url, data={"JWT": token}, timeout=10).status_code == 200
    count = len(titles(demo))

    again = browser.session.post(return_url, data={"JWT": token}, timeout=10)

    if demo.family == "canvas":
        assert again.status_code == 400
        assert len(titles(demo)) == count
    else:  # Moodle keeps no jti: the sesskey-bound return URL is its guard
        assert again.status_code == 200


def _resign(demo: RunningDemo, token: str, claims: dict[str, object]) -> str:
    """claims signed with the tool's current key (read from the tool app)."""
    with demo.tool_app.app_context():
        kid, pem = get_signing_key()
        db.session.remove()
    assert kid == jwt.get_unverified_header(token)["kid"]
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


# -- NRPS ----------------------------------------------------------------------------------------


def service_token(demo: RunningDemo, scope: str) -> str:
    """An access token from the sandbox's token endpoint, for the tool's client_id."""
    lms = get_sandbox_lms(demo.lms_app)
    with demo.tool_app.app_context():
        kid, pem = get_signing_key()
        db.session.remove()
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": lms.site.client_id,
            "sub": lms.site.client_id,
            "aud": lms.auth_token_url,
            "iat": now,
            "exp": now + 60,
            "jti": f"nrps-test-{now}-{scope[-12:]}",
        },
        pem,
        algorithm="RS256",
        headers={"kid": kid},
    )
    resp = requests.post(
        lms.auth_token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": scope,
        },
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def test_nrps_lists_every_member_over_linked_pages(demo: RunningDemo) -> None:
    lms = get_sandbox_lms(demo.lms_app)
    token = service_token(demo, SCOPE_NRPS)
    url: str | None = lms.url(
        "/api/lti/courses/1/names_and_roles"
        if demo.family == "canvas"
        else "/mod/lti/services.php/CourseSection/2/bindings/1/memberships"
    )
    seen: list[str] = []
    pages = 0
    while url is not None:
        resp = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith(CT_NRPS)
        body = resp.json()
        assert body["context"]["title"] == lms.course.title
        seen += [member["user_id"] for member in body["members"]]
        pages += 1
        url = resp.links.get("next", {}).get("url")

    assert pages > 1
    assert sorted(seen) == sorted(user.sub for user in lms.users.values())
    learners = [u for u in lms.users.values() if not u.is_instructor]
    assert len(learners) >= 4


def test_nrps_refuses_a_token_without_the_membership_scope(demo: RunningDemo) -> None:
    lms = get_sandbox_lms(demo.lms_app)
    token = service_token(demo, SCOPE_SCORE)
    url = (
        lms.url("/api/lti/courses/1/names_and_roles")
        if demo.family == "canvas"
        else lms.url("/mod/lti/services.php/CourseSection/2/bindings/1/memberships")
    )

    refused = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    anonymous = requests.get(url, timeout=10)

    assert refused.status_code == 401
    assert anonymous.status_code == 401


def test_instructor_sees_students_who_never_launched_from_the_lms_roster(demo: RunningDemo) -> None:
    browser = Browser()
    course = browser.open(demo.urls.lms + "/")

    page = browser.open(course.link("Launch as instructor"))

    assert page.status == 200, page.text[:400]
    assert "Kim Lee" in page.text and "Dana Ivanova" in page.text
    assert "Not started" in page.text
