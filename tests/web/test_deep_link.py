from __future__ import annotations

import base64
import html
import json
import re

import jwt
import pytest
from sqlalchemy import func, select

from lti_proctor.exam_settings import ExamSettings, unseal_code
from lti_proctor.extensions import db
from lti_proctor.identity import Exam
from lti_proctor.lti import claims as c
from lti_proctor.lti.deep_linking import CONTENT_ITEMS, DATA
from lti_proctor.lti.keys import get_signing_key
from tests.constants import TOOL_URL
from tests.factories_attempts import ACCESS_CODE, EXAM_URL, PROCTOR_CONFIG, fake_service
from tests.launches import LaunchBuilder

FORM = {
    "title": "Midterm",
    "exam_url": EXAM_URL,
    "access_code": ACCESS_CODE,
    "profile": "standard",
    "max_attempts": "2",
    "opens_at": "",
    "closes_at": "",
}


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


@pytest.fixture(params=["moodle", "canvas"])
def family(request):
    return request.param


@pytest.fixture
def lms(app, client, http, family):
    """The LMS's deep-linking request (the instructor adds an activity)."""
    return LaunchBuilder(app, client, http, family=family, message="deep-linking")


def student(lms):
    return LaunchBuilder(lms.app, lms.client, lms.http, family=lms.family, register=False)


def form_action(resp):
    match = re.search(r'<form method="post" action="(/lti/deep-link/[^"]+)"', resp.text)
    assert match, resp.text[:800]
    return html.unescape(match.group(1))


def settings_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ExamSettings))


def returned(resp):
    """The auto-posted answer: where it goes and the JWT it carries."""
    action = re.search(r'<form method="post" action="([^"]+)" id="deep-link-return"', resp.text)
    token = re.search(r'name="JWT" value="([^"]+)"', resp.text)
    assert action and token, resp.text[:800]
    return html.unescape(action.group(1)), html.unescape(token.group(1))


def verify_as_the_lms(app, lms, token):
    """Check the answer as Moodle's contentitem_return.php and Canvas's deep_linking_response do:
    the tool's published key, iss = client_id, aud = the platform, message type, version."""
    with app.app_context():
        kid, key = get_signing_key()
    assert jwt.get_unverified_header(token)["kid"] == kid
    body = jwt.decode(
        token,
        key.public_key(),
        algorithms=["RS256"],
        audience=lms.issuer,
        issuer=lms.client_id,
        options={"require": ["exp", "iat", "nonce"]},
    )
    assert body[c.MESSAGE_TYPE] == "LtiDeepLinkingResponse"
    assert body[c.VERSION] == "1.3.0"
    assert body[c.DEPLOYMENT_ID] == lms.deployment_id
    assert body["jti"]
    return body


def add_exam(lms, form=FORM, **claims):
    resp = lms.launch(overrides=claims)
    assert resp.status_code == 200, resp.text[:500]
    return lms.client.post(form_action(resp), data=form)


# -- the form ------------------------------------------------------------------------------------


def test_deep_linking_request_shows_the_exam_form_in_the_lms_frame(app, lms):
    resp = lms.launch()
    assert resp.status_code == 200
    for name in ("title", "exam_url", "access_code", "profile", "max_attempts", "opens_at"):
        assert f'name="{name}"' in resp.text
    assert 'name="closes_at"' in resp.text
    assert "Camera only, in the browser" in resp.text  # the profile's one-line description
    policy = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' " + lms.issuer in policy or lms.issuer in policy
    assert settings_count(app) == 0


def test_a_student_cannot_add_an_exam(app, lms):
    roles = ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]
    resp = lms.launch(overrides={"roles": roles})
    assert resp.status_code == 403
    assert b"launch.role_not_allowed" in resp.data


def test_a_request_that_takes_no_lti_links_is_refused(app, lms):
    settings = dict(lms.fixture["claims"][c.DEEP_LINKING_SETTINGS])
    settings.update(accept_types=["file"], accept_media_types="image/*")
    resp = lms.launch(overrides={"deep_linking_settings": settings})
    assert resp.status_code == 400
    # Refused by the launch's claim check or by the deep-linking step: no form either way.
    assert b"launch.claim_invalid" in resp.data or b"launch.deep_link_unsupported" in resp.data
    assert b'name="exam_url"' not in resp.data


# -- the answer ----------------------------------------------------------------------------------


def test_submitted_form_stores_the_exam_and_answers_with_a_signed_link(app, lms):
    settings = dict(lms.fixture["claims"][c.DEEP_LINKING_SETTINGS], data="opaque-42")
    resp = add_exam(lms, deep_linking_settings=settings)
    assert resp.status_code == 200
    action, token = returned(resp)
    assert action == settings["deep_link_return_url"]
    assert "form-action 'self' " in resp.headers["Content-Security-Policy"]
    body = verify_as_the_lms(app, lms, token)
    assert body[DATA] == "opaque-42"
    [item] = body[CONTENT_ITEMS]
    with app.app_context():
        row = db.session.scalars(select(ExamSettings)).one()
        assert (row.title, row.exam_url, row.profile, row.max_attempts) == (
            "Midterm",
            EXAM_URL,
            "standard",
            2,
        )
        assert ACCESS_CODE not in row.access_code and unseal_code(row.access_code) == ACCESS_CODE
        ref = row.ref
    assert item == {
        "type": "ltiResourceLink",
        "title": "Midterm",
        "url": TOOL_URL + "/lti/launch",
        "custom": {"exam": ref},
        "lineItem": {
            "label": "Proctoring: Midterm",
            "scoreMaximum": 100.0,
            "resourceId": ref,
            "tag": "proctoring",
        },
    }
    assert ACCESS_CODE not in resp.text and ACCESS_CODE not in json.dumps(body)


def test_no_line_item_where_the_platform_takes_none(app, lms):
    settings = dict(lms.fixture["claims"][c.DEEP_LINKING_SETTINGS], accept_lineitem=False)
    _, token = returned(add_exam(lms, deep_linking_settings=settings))
    [item] = verify_as_the_lms(app, lms, token)[CONTENT_ITEMS]
    assert "lineItem" not in item and item["custom"]["exam"].startswith("ex_")


def test_the_form_is_used_once(app, lms):
    resp = lms.launch()
    action = form_action(resp)
    assert lms.client.post(action, data=FORM).status_code == 200
    again = lms.client.post(action, data=FORM)
    assert again.status_code == 400
    assert b"deep_link.expired" in again.data
    assert settings_count(app) == 1


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("exam_url", "ftp://files.example.edu/quiz", "https://"),
        ("exam_url", "javascript:alert(1)", "https://"),
        ("title", "  ", "title"),
        ("profile", "no_such_profile", "profiles listed"),
        ("closes_at", "2030-05-01T09:00", "close after it opens"),
        ("max_attempts", "0", "whole number"),
    ],
)
def test_bad_input_shows_the_form_again_and_stores_nothing(app, lms, field, value, words):
    resp = lms.launch()
    action = form_action(resp)
    bad = {**FORM, "opens_at": "2030-05-01T10:00", field: value}
    shown = lms.client.post(action, data=bad)
    assert shown.status_code == 400
    error = re.search(rf'id="{field}-error"[^>]*>([^<]+)<', shown.text)
    assert error and words in html.unescape(error.group(1))
    assert settings_count(app) == 0
    assert lms.client.post(action, data=FORM).status_code == 200  # corrected, it goes through
    assert settings_count(app) == 1


# -- the stored link, launched -------------------------------------------------------------------


def test_student_launch_of_the_new_link_finds_its_settings(app, client, http, lms):
    service = fake_service(http)
    _, token = returned(add_exam(lms))
    [item] = verify_as_the_lms(app, lms, token)[CONTENT_ITEMS]
    learner = student(lms)
    login = learner.login()
    id_token = learner.sign(learner.claims(login, overrides={"custom": item["custom"]}))
    # What the student's browser carries: nothing but the opaque reference.
    payload = id_token.split(".")[1]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert ACCESS_CODE not in decoded and "access_code" not in decoded
    assert ACCESS_CODE not in login.response.get_data(as_text=True)
    resp = learner.post(id_token, login.state)
    assert resp.status_code == 200
    assert ACCESS_CODE not in resp.text
    assert service.calls == 1
    with app.app_context():
        exam = db.session.scalars(select(Exam)).one()
        row = db.session.scalars(select(ExamSettings)).one()
        assert exam.settings_id == row.id


def test_another_courses_reference_is_refused(app, lms):
    _, token = returned(add_exam(lms))
    [item] = verify_as_the_lms(app, lms, token)[CONTENT_ITEMS]
    learner = student(lms)
    context = {**learner.fixture["claims"][c.CONTEXT], "id": "another-course"}
    resp = learner.launch(overrides={"custom": item["custom"], "context": context})
    assert resp.status_code == 404
    assert b"launch.exam_not_found" in resp.data
    assert ACCESS_CODE.encode() not in resp.data
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Exam)) == 0
