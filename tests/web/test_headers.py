from __future__ import annotations

import pytest
from flask import session

from lti_proctor.web.headers import frame_ancestors, origin_of
from tests.factories_attempts import EXAM_URL, PROCTOR_CONFIG, fake_service
from tests.launches import LaunchBuilder


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


def csp(resp):
    policy = resp.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/.well-known/jwks.json", 200),
        ("GET", "/no-such-page", 404),
        ("GET", "/lti/login", 400),
        ("POST", "/webhooks/trustexam/start", None),
        ("GET", "/exam/api/attempt/state", 401),
    ],
)
def test_every_response_says_nosniff_hsts_and_no_referrer(client, method, path, status):
    resp = client.open(path, method=method)
    if status is not None:
        assert resp.status_code == status
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert resp.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/no-such-page", "/lti/login", "/instructor/forged/attempts"])
def test_error_pages_carry_a_content_security_policy(client, path):
    resp = client.get(path)
    assert resp.mimetype == "text/html"
    policy = csp(resp)
    assert policy["script-src"] in (["'self'"], ["'none'"])
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]


def test_plain_http_base_url_sends_no_hsts(app, client):
    app.config["BASE_URL"] = "http://127.0.0.1:5000"
    resp = client.get("/.well-known/jwks.json")
    assert "Strict-Transport-Security" not in resp.headers
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "url",
    [
        "https://*;sandbox allow-scripts",
        "https://lms.example.edu;script-src *",
        "https://lms.example.edu 'unsafe-inline'",
        "https://user:pw@lms.example.edu",
        "https://lms.example.edu:99999",
        "https://*.example.edu",
        'https://lms.example.edu"',
        "javascript:alert(1)",
        "data:text/html,hi",
        "//lms.example.edu",
        "",
        None,
    ],
)
def test_origin_of_refuses_anything_that_is_not_a_plain_origin(url):
    assert origin_of(url) is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://LMS.example.edu/mod/lti/return.php?x=1", "https://lms.example.edu"),
        ("http://127.0.0.1:8000/course", "http://127.0.0.1:8000"),
        ("https://[2001:db8::1]:8443/a", "https://[2001:db8::1]:8443"),
    ],
)
def test_origin_of_keeps_real_origins(url, origin):
    assert origin_of(url) == origin


def test_frame_ancestors_drops_anything_that_is_not_an_origin():
    directive = frame_ancestors(["https://lms.example.edu", "*", "https://a.b;sandbox"])
    assert directive == "frame-ancestors 'self' https://lms.example.edu"


def test_return_url_cannot_inject_directives_into_the_exam_page(app, client, http):
    fake_service(http)
    lms = LaunchBuilder(app, client, http)
    presentation = {"return_url": "https://*;sandbox allow-scripts", "document_target": "iframe"}
    resp = lms.launch(
        overrides={"custom": {"exam_url": EXAM_URL}, "launch_presentation": presentation}
    )
    assert resp.status_code == 200
    policy = resp.headers["Content-Security-Policy"]
    assert "sandbox" not in policy and "*" not in policy
    assert "allow-scripts" not in resp.get_data(as_text=True)
    ancestors = csp(resp)["frame-ancestors"]
    assert ancestors[0] == "'self'"
    assert all(origin_of(o) == o for o in ancestors[1:])
    assert csp(resp)["frame-src"] == [origin_of(EXAM_URL)]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_no_request_keeps_a_cookie_session(app):
    # LTI state rides in the shared store and signed tokens; a write to Flask's session (which
    # would set a cookie the LMS frame may not send back) fails instead of working by accident
    with app.test_request_context("/lti/launch", method="POST"):
        app.preprocess_request()
        with pytest.raises(RuntimeError, match="session is unavailable"):
            session["state"] = "x"
