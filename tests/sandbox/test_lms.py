"""The sandbox LMS: its login initiation, auth endpoint, JWKS and id_tokens match what Moodle 4.5
and Canvas send (tests/fixtures/launches/), claim for claim and in the same order."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from lti_proctor.sandbox.lms import create_sandbox_lms
from lti_proctor.sandbox.lms_data import BOS, DEEP_LINKING, DL, LTI, RESOURCE_LINK
from lti_proctor.sandbox.lms_platform import PendingLaunch, SandboxLms, get_sandbox_lms
from tests.launches import load_fixture
from tests.live import parse_forms

HOSTS = {"moodle": "https://moodle.example.edu", "canvas": "https://school.instructure.com"}
TOOL = "https://tool.example.com"
MESSAGES = [
    ("moodle", "student"),
    ("moodle", "instructor"),
    ("moodle", "deep-linking"),
    ("canvas", "student"),
    ("canvas", "instructor"),
    ("canvas", "deep-linking"),
]


def fixture_like_lms(family: str, **options: Any) -> Flask:
    """A sandbox at the fixtures' hosts, for a tool whose launch URL is TOOL/launch."""
    return create_sandbox_lms(
        base_url=HOSTS[family], tool_url=TOOL, family=family, launch_path="/launch", **options
    )


def _pending(lms: SandboxLms, message: str) -> PendingLaunch:
    user = "student" if message == "student" else "instructor"
    if message == "deep-linking":
        return PendingLaunch(user, None, DEEP_LINKING, 1)
    return PendingLaunch(user, "final", RESOURCE_LINK, 1)


def _post_form(page_html: str) -> dict[str, str]:
    (form,) = parse_forms(page_html)
    return {"action": form.action, **dict(form.fields)}


@pytest.mark.parametrize(("family", "message"), MESSAGES)
def test_id_token_claims_are_exactly_the_lms_shape(family: str, message: str) -> None:
    expected = load_fixture(family, message)["claims"]
    lms = get_sandbox_lms(fixture_like_lms(family))

    claims = lms.claims(_pending(lms, message), nonce="<nonce>", iat=expected["iat"])

    # Per-launch values the fixture shows as examples: a random launch id and its hash,
    # Moodle's session key and Canvas's signed `data`.
    if BOS in claims:
        sourcedid = json.loads(claims[BOS]["lis_result_sourcedid"])
        assert set(sourcedid) == {"data", "hash"} and re.fullmatch(
            r"[0-9a-f]{64}", sourcedid["hash"]
        )
        assert sourcedid["data"]["userid"] == expected["sub"]
        claims[BOS]["lis_result_sourcedid"] = expected[BOS]["lis_result_sourcedid"]
    if message == "deep-linking":
        claims[DL]["deep_link_return_url"] = expected[DL]["deep_link_return_url"]
    assert list(claims) == list(expected)
    assert claims == expected


@pytest.mark.parametrize(("family", "message"), MESSAGES)
def test_login_initiation_sends_the_lms_parameters(family: str, message: str) -> None:
    expected = load_fixture(family, message)["login_initiation"]
    lms = get_sandbox_lms(fixture_like_lms(family))
    user = "student" if message == "student" else "instructor"
    link = None if message == "deep-linking" else "final"

    fields = dict(lms.login_initiation(user, link, _pending(lms, message).message_type))

    assert list(fields) == list(expected)
    hint = fields.pop("lti_message_hint")
    assert fields == {k: v for k, v in expected.items() if k != "lti_message_hint"}
    if family == "moodle":
        shape = json.loads(expected["lti_message_hint"])
        assert list(json.loads(hint)) == list(shape)
        assert lms.take_pending(hint) is not None
    else:
        assert hint.count(".") == 2  # a Canvas-signed JWT the tool passes back unchanged
        assert lms.take_pending(hint) is not None


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_jwks_publishes_the_signing_key(family: str) -> None:
    app = fixture_like_lms(family)
    lms = get_sandbox_lms(app)
    path = urlsplit(lms.key_set_url).path

    resp = app.test_client().get(path)

    assert resp.status_code == 200 and resp.mimetype == "application/json"
    (key,) = resp.get_json()["keys"]
    assert (key["kty"], key["alg"], key["use"], key["kid"]) == ("RSA", "RS256", "sig", lms.kid)
    kid_shape = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" if family == "canvas" else r"[0-9a-f]{20}"
    assert re.fullmatch(kid_shape, lms.kid)


def test_describe_gives_what_the_tool_registers() -> None:
    moodle = get_sandbox_lms(create_sandbox_lms(base_url="http://127.0.0.1:8001/", tool_url=TOOL))
    canvas = get_sandbox_lms(
        create_sandbox_lms(base_url="http://127.0.0.1:8002", tool_url=TOOL, family="canvas")
    )

    assert moodle.describe() == {
        "name": "Sandbox Moodle",
        "family": "moodle",
        "issuer": "http://127.0.0.1:8001",
        "client_id": "qJFGPTxkK5WNQyx",
        "deployment_id": "1",
        "auth_login_url": "http://127.0.0.1:8001/mod/lti/auth.php",
        "auth_token_url": "http://127.0.0.1:8001/mod/lti/token.php",
        "key_set_url": "http://127.0.0.1:8001/mod/lti/certs.php",
        "auth_audience": None,
    }
    assert canvas.describe() == {
        "name": "Sandbox Canvas",
        "family": "canvas",
        "issuer": "https://canvas.instructure.com",
        "client_id": "10000000000001",
        "deployment_id": "1:e1a232a098ca4a42f2e719069b499ce90d778063",
        "auth_login_url": "http://127.0.0.1:8002/api/lti/authorize_redirect",
        "auth_token_url": "http://127.0.0.1:8002/login/oauth2/token",
        "key_set_url": "http://127.0.0.1:8002/api/lti/security/jwks",
        "auth_audience": None,
    }


def test_index_lists_launch_links_and_the_registration() -> None:
    app = create_sandbox_lms(base_url="http://127.0.0.1:8001", tool_url=TOOL)

    html = app.test_client().get("/").get_data(as_text=True)

    assert "PROC101" in html and "Final exam (proctored)" in html
    assert "Launch as student" in html and "Launch as instructor" in html
    assert "qJFGPTxkK5WNQyx" in html and "/mod/lti/certs.php" in html


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_launch_page_auto_posts_the_login_initiation_to_the_tool(family: str) -> None:
    client = fixture_like_lms(family).test_client()

    form = _post_form(client.get("/launch/final/student").get_data(as_text=True))

    assert form.pop("action") == TOOL + "/lti/login"
    expected = load_fixture(family, "student")["login_initiation"]
    assert set(form) == set(expected)
    assert form["login_hint"] == expected["login_hint"]


def _auth_params(app: Flask, user: str = "student", **overrides: str | None) -> dict[str, str]:
    lms = get_sandbox_lms(app)
    fields = dict(lms.login_initiation(user, "final"))
    params: dict[str, str | None] = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": lms.site.client_id,
        "redirect_uri": TOOL + "/launch",
        "state": "state-1",
        "nonce": "nonce-1",
        "login_hint": fields["login_hint"],
        "lti_message_hint": fields["lti_message_hint"],
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def _authorize(client: FlaskClient, family: str, params: dict[str, str]) -> Any:
    path = "/api/lti/authorize" if family == "canvas" else "/mod/lti/auth.php"
    return client.get(path + "?" + urlencode(params))


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_auth_endpoint_posts_a_signed_id_token_and_the_state_back(family: str) -> None:
    app = fixture_like_lms(family)
    lms = get_sandbox_lms(app)

    resp = _authorize(app.test_client(), family, _auth_params(app))

    assert resp.status_code == 200
    form = _post_form(resp.get_data(as_text=True))
    assert form["action"] == TOOL + "/launch" and form["state"] == "state-1"
    header = jwt.get_unverified_header(form["id_token"])
    assert header == {"alg": "RS256", "kid": lms.kid, "typ": "JWT"}
    public = jwt.PyJWK(lms.jwks()["keys"][0]).key
    claims = jwt.decode(form["id_token"], public, algorithms=["RS256"], audience=lms.site.client_id)
    assert claims["nonce"] == "nonce-1" and claims["iss"] == lms.site.issuer
    assert claims["exp"] - claims["iat"] == (3600 if family == "canvas" else 60)


def test_canvas_authorize_redirect_hands_on_to_the_institution_host() -> None:
    app = fixture_like_lms("canvas")
    params = _auth_params(app)

    resp = app.test_client().get("/api/lti/authorize_redirect?" + urlencode(params))

    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        HOSTS["canvas"] + "/api/lti/authorize"
    )
    assert dict(parse_qsl(location.query)) == params


@pytest.mark.parametrize("family", ["moodle", "canvas"])
@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_mode": "query"}, "invalid_request"),
        ({"response_mode": None}, "invalid_request"),
        ({"prompt": "login"}, "invalid_request"),
        ({"scope": "openid profile"}, "invalid_scope"),
        ({"response_type": "code"}, "unsupported_response_type"),
        ({"nonce": None}, "invalid_request"),
        ({"login_hint": "999"}, "access_denied"),
        ({"lti_message_hint": "{}"}, "invalid_request"),
    ],
)
def test_auth_endpoint_posts_oidc_errors_back_to_the_tool(
    family: str, overrides: dict[str, str | None], error: str
) -> None:
    app = fixture_like_lms(family)

    resp = _authorize(app.test_client(), family, _auth_params(app, **overrides))

    assert resp.status_code == 200
    form = _post_form(resp.get_data(as_text=True))
    assert form["error"] == error and form["state"] == "state-1"
    assert "id_token" not in form


@pytest.mark.parametrize("family", ["moodle", "canvas"])
@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "someone-else"}, "unauthorized_client"),
        ({"redirect_uri": "https://evil.example/launch"}, "invalid_redirect_uri"),
    ],
)
def test_auth_endpoint_refuses_untrusted_clients_without_posting_anywhere(
    family: str, overrides: dict[str, str], error: str
) -> None:
    app = fixture_like_lms(family)

    resp = _authorize(app.test_client(), family, _auth_params(app, **overrides))

    assert resp.status_code == 400
    assert f'<code class="error">{error}</code>' in resp.get_data(as_text=True)
    assert "<form" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_each_launch_hint_works_once(family: str) -> None:
    app = fixture_like_lms(family)
    client, params = app.test_client(), _auth_params(app)

    first = _post_form(_authorize(client, family, params).get_data(as_text=True))
    again = _post_form(_authorize(client, family, params).get_data(as_text=True))

    assert "id_token" in first
    assert again["error"] == "invalid_request"


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_custom_parameters_and_nrps_are_sent_when_configured(family: str) -> None:
    lms = get_sandbox_lms(fixture_like_lms(family, nrps=True, custom={"profile": "strict"}))
    extra = lms.add_resource_link("quiz", title="Quiz 2", custom={"profile": "light"})

    final = lms.claims(PendingLaunch("student", "final", RESOURCE_LINK, 1), nonce="n", iat=1)
    quiz = lms.claims(PendingLaunch("student", "quiz", RESOURCE_LINK, 1), nonce="n", iat=1)

    custom = "https://purl.imsglobal.org/spec/lti/claim/custom"
    assert final[custom] == {"profile": "strict"} and quiz[custom] == {"profile": "light"}
    link_claim = quiz["https://purl.imsglobal.org/spec/lti/claim/resource_link"]
    assert (link_claim["id"], link_claim["title"]) == (extra.id, "Quiz 2")
    nrps = final["https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"]
    expected_url = {
        "moodle": HOSTS["moodle"] + "/mod/lti/services.php/CourseSection/2/bindings/1/memberships",
        "canvas": HOSTS["canvas"] + "/api/lti/courses/1/names_and_roles",
    }[family]
    assert nrps["context_memberships_url"] == expected_url


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="family"):
        create_sandbox_lms(base_url="http://x", tool_url=TOOL, family="blackboard")


@pytest.mark.parametrize("family", ["moodle", "canvas"])
@pytest.mark.parametrize(
    ("accept", "locale"), [("kk-KZ,ru;q=0.8", "kk"), ("ru-RU", "ru"), ("de-DE", "en"), (None, "en")]
)
def test_launch_carries_the_users_language_as_its_locale(
    family: str, accept: str | None, locale: str
) -> None:
    app = fixture_like_lms(family)
    client = app.test_client()
    headers = {"Accept-Language": accept} if accept else {}
    form = _post_form(client.get("/launch/final/student", headers=headers).get_data(as_text=True))
    params = {**_auth_params(app), "lti_message_hint": form["lti_message_hint"]}

    resp = _authorize(client, family, params)

    token = _post_form(resp.get_data(as_text=True))["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims[LTI + "launch_presentation"]["locale"] == locale
    if family == "canvas":
        assert claims["locale"] == locale
