from __future__ import annotations

import json

import pytest
import responses
from sqlalchemy import func, select

from lti_proctor.attempts.models import Attempt
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner
from tests.factories_attempts import EXAM_URL, PROCTOR_CONFIG, SESSION_URL, fake_service
from tests.launches import LaunchBuilder

CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"
LINK = "https://purl.imsglobal.org/spec/lti/claim/resource_link"


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


@pytest.fixture
def lms(app, client, http):
    return LaunchBuilder(app, client, http)


def rows(app):
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (Exam, Learner, Attempt)
        )


def overlong(lms, name):
    """Claim overrides that make one value too long (names as the page shows them)."""
    claims = lms.claims()
    custom = {"exam_url": EXAM_URL}
    big = "x" * 5000
    return {
        "custom.access_code": {"custom": {**custom, "access_code": "A" * 256}},
        "custom.exam_url": {"custom": {"exam_url": EXAM_URL + "?" + "q" * 2100}},
        "custom.max_attempts": {"custom": {**custom, "max_attempts": "1" * 50}},
        "custom.proctoring_profile": {"custom": {**custom, "proctoring_profile": "p" * 65}},
        "custom.notes": {"custom": {**custom, "notes": big}},
        "custom (more than": {"custom": {**custom, **{f"k{i}": "v" for i in range(101)}}},
        "sub": {"sub": "s" * 256},
        "name": {"name": big},
        "email": {"email": "e" * 400 + "@example.edu"},
        "locale": {"launch_presentation": {"locale": "en-" + "x" * 60}},
        "launch_presentation.return_url": {
            "launch_presentation": {"return_url": "https://lms.example.edu/" + "r" * 2100}
        },
        "context.title": {CONTEXT: {**claims[CONTEXT], "title": big}},
        "resource_link.id": {LINK: {**claims[LINK], "id": "l" * 256}},
    }[name]


NAMES = [
    "custom.access_code",
    "custom.exam_url",
    "custom.max_attempts",
    "custom.proctoring_profile",
    "custom.notes",
    "custom (more than",
    "sub",
    "name",
    "email",
    "locale",
    "launch_presentation.return_url",
    "context.title",
    "resource_link.id",
]


@pytest.mark.parametrize("name", NAMES)
def test_overlong_launch_value_is_a_readable_400_and_stores_nothing(app, lms, http, name):
    service = fake_service(http)
    resp = lms.launch(overrides=overlong(lms, name))
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "launch.claim_invalid" in page
    assert name in page
    assert rows(app) == (0, 0, 0)
    assert service.calls == 0


def test_link_with_an_overlong_parameter_keeps_working_once_fixed(app, lms, http):
    fake_service(http)
    # (A custom access_code is refused whatever its length: issue 8 keeps codes in the tool.)
    bad = lms.launch(overrides={"custom": {"exam_url": EXAM_URL, "max_attempts": "1" * 10}})
    assert bad.status_code == 400
    good = lms.launch(overrides={"custom": {"exam_url": EXAM_URL, "max_attempts": "1" * 9}})
    assert good.status_code == 200
    assert rows(app) == (1, 1, 1)


@pytest.mark.parametrize(
    "session",
    [
        {"token": "t" * 70000, "id": 1},
        {"token": "sdk-token", "id": "9" * 300},
        {"token": ["not", "a", "string"], "id": 1},
    ],
)
def test_service_answer_over_its_limits_is_refused_and_leaves_no_attempt(app, lms, http, session):
    body = {
        "external_session": session,
        "report_url": "https://app.proctor.example.test/r/1",
        "session_url": "https://app.proctor.example.test/s/1",
    }
    http.add(responses.POST, SESSION_URL, json=body, status=200)
    resp = lms.launch(overrides={"custom": {"exam_url": EXAM_URL}})
    assert resp.status_code == 502
    assert "proctor.rejected" in resp.get_data(as_text=True)
    assert rows(app)[2] == 0


def test_service_report_url_over_its_limit_is_refused(app, lms, http):
    body = {
        "external_session": {"token": "sdk-token", "id": 1},
        "report_url": "https://app.proctor.example.test/" + "r" * 3000,
    }
    http.add(responses.POST, SESSION_URL, body=json.dumps(body), status=200)
    resp = lms.launch(overrides={"custom": {"exam_url": EXAM_URL}})
    assert resp.status_code == 502
    assert rows(app)[2] == 0
