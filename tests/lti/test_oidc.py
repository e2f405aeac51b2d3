"""Third-party initiated login (/lti/login): the redirect to the platform, the state cookie, the
nonce in the shared store, and refusals that store nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from tests.constants import TOOL_URL
from tests.factories import make_platform
from tests.launches import LaunchBuilder, nonce_pending, store_size


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_login_redirects_to_the_platform_auth_url_with_the_oidc_parameters(
    app: Flask, client: FlaskClient, http: responses.RequestsMock, family: str, method: str
) -> None:
    b = LaunchBuilder(app, client, http, family=family)
    expected = b.fixture["auth_request"]

    login = b.login(method=method)

    assert login.response.status_code == 302
    location = urlsplit(login.response.headers["Location"])
    auth_url = "https://sso.canvaslms.com/api/lti/authorize_redirect"
    if family == "moodle":
        auth_url = "https://moodle.example.edu/mod/lti/auth.php"
    assert f"{location.scheme}://{location.netloc}{location.path}" == auth_url
    params = parse_qsl(location.query)
    assert [name for name, _ in params] == list(expected)  # the names, in the LMS's order
    sent = dict(params)
    for name in ("scope", "response_type", "response_mode", "prompt", "client_id"):
        assert sent[name] == expected[name]
    assert sent["redirect_uri"] == TOOL_URL + "/lti/launch"
    assert sent["login_hint"] == expected["login_hint"]
    assert sent["lti_message_hint"] == expected["lti_message_hint"]  # passed back unchanged
    assert sent["state"].startswith("state-") and len(sent["nonce"]) >= 32


def test_login_sets_the_state_cookie_samesite_none_secure(builder_app: LaunchBuilder) -> None:
    login = builder_app.login()

    (cookie,) = login.response.headers.getlist("Set-Cookie")
    assert cookie.startswith(f"lti1p3-{login.state}={login.state};")
    for flag in ("Secure", "HttpOnly", "SameSite=None", "Path=/", "Max-Age=900"):
        assert flag in cookie


def test_login_with_dev_insecure_cookies_sets_a_lax_cookie_for_plain_http(
    app: Flask, builder_app: LaunchBuilder
) -> None:
    app.config["DEV_INSECURE_COOKIES"] = True

    login = builder_app.login()

    (cookie,) = login.response.headers.getlist("Set-Cookie")
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Secure" not in cookie


def test_login_records_its_nonce_in_the_shared_store(
    app: Flask, builder_app: LaunchBuilder
) -> None:
    login = builder_app.login()
    assert nonce_pending(app, login.nonce)


def test_login_without_client_id_uses_the_issuers_only_registration(
    builder_app: LaunchBuilder,
) -> None:
    login = builder_app.login(client_id=None)
    assert login.response.status_code == 302
    assert login.params["client_id"] == builder_app.client_id


def test_login_picks_the_client_id_of_an_issuer_with_several(
    app: Flask, builder_app: LaunchBuilder
) -> None:
    with app.app_context():
        make_platform(client_id="second-client", deployments=["1"])

    login = builder_app.login(client_id="second-client")

    assert login.params["client_id"] == "second-client"


@pytest.mark.parametrize(
    ("overrides", "reason", "shown"),
    [
        ({"iss": "https://lms.unknown.example"}, "launch.registration_unknown", "unknown issuer"),
        ({"client_id": "not-registered"}, "launch.registration_unknown", "unknown client_id"),
        ({"iss": None}, "launch.login_invalid", "missing login parameter: iss"),
        ({"login_hint": None}, "launch.login_invalid", "missing login parameter: login_hint"),
    ],
    ids=["unknown-issuer", "unknown-client-id", "no-iss", "no-login-hint"],
)
def test_login_refusal_is_a_readable_page_and_stores_nothing(
    app: Flask,
    builder_app: LaunchBuilder,
    overrides: dict[str, str | None],
    reason: str,
    shown: str,
) -> None:
    before = store_size(app)

    login = builder_app.login(**overrides)

    resp = login.response
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert f'<code class="reason">{reason}</code>' in page and shown in page
    assert "Set-Cookie" not in resp.headers
    assert store_size(app) == before


def test_login_without_client_id_for_an_issuer_with_several_is_refused(
    app: Flask, builder_app: LaunchBuilder
) -> None:
    with app.app_context():
        make_platform(client_id="second-client", deployments=["1"])

    resp = builder_app.login(client_id=None).response

    assert resp.status_code == 400
    assert "launch.registration_unknown" in resp.get_data(as_text=True)


@pytest.fixture
def builder_app(app: Flask, client: FlaskClient, http: responses.RequestsMock) -> LaunchBuilder:
    """A registered Moodle platform."""
    return LaunchBuilder(app, client, http)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("https://evil.example.com/lti/launch", "launch.target_link_invalid"),
        ("https://tool.example.com.evil.example/launch", "launch.target_link_invalid"),
        ("https://tool.example.com@evil.example/launch", "launch.target_link_invalid"),
        ("http://tool.example.com/launch", "launch.target_link_invalid"),
        ("https://tool.example.com:99999/launch", "launch.target_link_invalid"),
        (None, "launch.login_invalid"),
    ],
    ids=["other-host", "suffix-host", "userinfo", "plain-http", "bad-port", "missing"],
)
def test_login_for_a_target_that_is_not_this_tool_is_refused_and_never_followed(
    app: Flask, builder_app: LaunchBuilder, target: str | None, reason: str
) -> None:
    before = store_size(app)

    resp = builder_app.login(target_link_uri=target).response

    assert resp.status_code == 400
    assert f'<code class="reason">{reason}</code>' in resp.get_data(as_text=True)
    assert "Location" not in resp.headers and "Set-Cookie" not in resp.headers
    assert store_size(app) == before


def test_login_accepts_any_target_under_a_base_url_with_a_path(
    app: Flask, builder_app: LaunchBuilder
) -> None:
    app.config["BASE_URL"] = TOOL_URL + "/proctor"

    inside = builder_app.login(target_link_uri=TOOL_URL + "/proctor/lti/launch").response
    outside = builder_app.login(target_link_uri=TOOL_URL + "/proctorx/lti/launch").response

    assert inside.status_code == 302
    assert outside.status_code == 400


# --- LTI Platform Storage ------------------------------------------------------------------


def test_login_with_a_storage_target_answers_with_the_page_that_uses_platform_storage(
    app: Flask, client: FlaskClient, http: responses.RequestsMock
) -> None:
    b = LaunchBuilder(app, client, http, family="canvas")

    login = b.login(lti_storage_target="post_message_forwarding")

    resp = login.response
    assert resp.status_code == 200 and "Location" not in resp.headers
    page = resp.get_data(as_text=True)
    (form,) = parse_forms(page)
    assert form.id == "lti-continue" and form.method == "get"
    assert form.action == "https://sso.canvaslms.com/api/lti/authorize_redirect"
    sent = dict(form.fields)
    assert sent["redirect_uri"] == TOOL_URL + "/lti/launch"
    state, nonce = sent["state"], sent["nonce"]
    assert 'data-target="post_message_forwarding"' in page
    assert 'data-origin="https://sso.canvaslms.com"' in page  # the only origin it talks to
    assert f'data-state-key="lti-proctor.state.{state}"' in page
    assert "<script>" not in page and "lti_storage.js" in page  # no inline script (CSP)
    assert "lti_storage_target" not in page.split('id="lti-new-window"')[1].split(">")[0]
    (cookie,) = resp.headers.getlist("Set-Cookie")  # cookies still work where they can
    assert cookie.startswith(f"lti1p3-{state}={state};")
    assert nonce_pending(app, nonce)


@pytest.mark.parametrize("target", ["", "a b", "x" * 65, "<script>"])
def test_login_with_an_unusable_storage_target_falls_back_to_the_cookie_redirect(
    builder_app: LaunchBuilder, target: str
) -> None:
    resp = builder_app.login(lti_storage_target=target).response
    assert resp.status_code == 302


def parse_forms(page: str) -> list[Any]:
    from tests.live import parse_forms as parse

    return parse(page)


def test_login_cookie_check_says_whether_the_state_cookie_came_back(
    app: Flask, builder_app: LaunchBuilder
) -> None:
    login = builder_app.login()

    with_cookie = builder_app.client.get("/lti/login/cookie", query_string={"state": login.state})
    without = app.test_client().get("/lti/login/cookie", query_string={"state": login.state})

    assert with_cookie.status_code == 204 and without.status_code == 404
