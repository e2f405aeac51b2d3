"""Launch routing (web/lti.py): each role reaches its page, or a 403 that stores nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from lti_proctor.extensions import db
from lti_proctor.lti.registrations import Deployment
from tests.launches import LaunchBuilder, table_counts

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
TA = LIS + "membership/Instructor#TeachingAssistant"
USER = LIS + "system/person#User"  # Canvas adds it to every launch
REFUSED = {
    "mentor": ([LIS + "membership#Mentor"], "mentor or observer"),
    "designer": ([LIS + "membership#ContentDeveloper"], "content developer"),
    "institution_admin": ([LIS + "institution/person#Administrator"], "institution or system"),
    "guest": ([LIS + "institution/person#Guest"], "guest"),
    "no_role": ([], "no role"),
    "teaching_assistant": ([LIS + "membership#Instructor", TA], "teaching assistant"),
}


def _builder(app: Flask, client: FlaskClient, http: responses.RequestsMock, family: str):
    return LaunchBuilder(app, client, http, family=family, message="instructor")


def _roles(family: str, uris: list[str]) -> list[str]:
    return [*uris, USER] if family == "canvas" else uris


@pytest.mark.parametrize("family", ["moodle", "canvas"])
@pytest.mark.parametrize("who", list(REFUSED))
def test_launch_by_a_role_without_access_is_a_readable_403_that_stores_nothing(
    app: Flask, client: FlaskClient, http: responses.RequestsMock, family: str, who: str
) -> None:
    b = _builder(app, client, http, family)
    uris, seen = REFUSED[who]
    before = table_counts(app)

    resp = b.launch(overrides={"roles": _roles(family, uris)})

    assert resp.status_code == 403
    page = resp.get_data(as_text=True)
    assert '<code class="reason">launch.role_not_allowed</code>' in page
    assert f"role seen: {seen}" in page
    assert "ask" in page.split("What you can do:")[1].lower()
    back = page.split('class="back" href="')[1].split('"')[0].replace("&amp;", "&")
    query = parse_qs(urlsplit(back).query)
    return_url = b.fixture["claims"][
        "https://purl.imsglobal.org/spec/lti/claim/launch_presentation"
    ]
    assert back.startswith(return_url["return_url"])
    assert query["lti_errormsg"] == ["Your role in this course does not give access to this page."]
    assert table_counts(app) == before
    assert len([c for c in http.calls if "external-session" in c.request.url]) == 0


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_teaching_assistant_sees_the_instructor_view_where_the_deployment_allows_it(
    app: Flask, client: FlaskClient, http: responses.RequestsMock, family: str
) -> None:
    b = _builder(app, client, http, family)
    with app.app_context():
        db.session.query(Deployment).update({Deployment.allow_teaching_assistants: True})
        db.session.commit()

    resp = b.launch(overrides={"roles": _roles(family, [LIS + "membership#Instructor", TA])})

    assert resp.status_code == 200
    assert "Proctoring results" in resp.get_data(as_text=True)


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_instructor_launch_opens_the_instructor_view(
    app: Flask, client: FlaskClient, http: responses.RequestsMock, family: str
) -> None:
    resp = _builder(app, client, http, family).launch()

    assert resp.status_code == 200
    assert "Proctoring results" in resp.get_data(as_text=True)


def test_deep_linking_launch_shows_the_exam_form(
    app: Flask, client: FlaskClient, http: responses.RequestsMock
) -> None:
    b = LaunchBuilder(app, client, http, message="deep-linking")

    resp = b.launch()

    assert resp.status_code == 200
    assert 'name="exam_url"' in resp.get_data(as_text=True)  # tests/web/test_deep_link.py
