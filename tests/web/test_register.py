"""/lti/register (LTI Dynamic Registration with an invite) and /lti/config/canvas.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
import responses
from sqlalchemy import func, select

from lti_proctor.extensions import db
from lti_proctor.lti import invites
from lti_proctor.lti.registrations import Deployment, Platform
from tests.factories import make_platform
from tests.factories_attempts import PROCTOR_CONFIG, fake_service
from tests.fakes.registration import (
    CANVAS_SSO,
    MOODLE,
    NRPS_SCOPE,
    TOOL_CONFIGURATION,
    canvas_registrar,
    moodle_registrar,
)
from tests.launches import LaunchBuilder

# A legacy link without access_code: a custom access_code is refused (launch.access_code_exposed).
EXAM_CUSTOM = {"exam_url": MOODLE + "/mod/quiz/view.php?id=42"}


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


def new_invite(app, *, expires_in=timedelta(days=7), learn=True, name=None):
    with app.app_context():
        created = invites.create_invite(
            now=datetime.now(UTC), expires_in=expires_in, name=name, learn_deployments=learn
        )
        db.session.commit()
        return created.token


def paste(client, registrar, invite):
    """The LMS opens the pasted URL with its own parameters appended."""
    query = {"invite": invite} if invite is not None else {}
    query.update(registrar.paste_params)
    return client.get("/lti/register?" + urlencode(query))


def platforms(app):
    with app.app_context():
        return [
            (p.issuer, p.client_id, [d.deployment_id for d in p.deployments], p.learn_deployments)
            for p in db.session.scalars(select(Platform).order_by(Platform.id))
        ]


def platform_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Platform))


def launcher(app, client, http, registrar, *, family):
    """A launch from the platform just registered (its keys, the client id it handed out)."""
    lms = LaunchBuilder(app, client, http, family=family, register=False)
    lms.client_id = registrar.client_id
    lms.jwks_url = registrar.configuration["jwks_uri"]
    lms.serve_jwks([lms.key])
    return lms


def student_launch(lms, *, deployment_id):
    login = lms.login(
        client_id=lms.client_id,
        **({"lti_deployment_id": deployment_id} if lms.family == "moodle" else {}),
        **({"deployment_id": deployment_id} if lms.family == "canvas" else {}),
    )
    overrides = {"aud": lms.client_id, "deployment_id": deployment_id, "custom": EXAM_CUSTOM}
    if lms.family == "canvas":
        overrides["azp"] = lms.client_id
    return lms.post(lms.sign(lms.claims(login, overrides=overrides)), login.state)


# -- the one-paste path --------------------------------------------------------------------------


def test_register_moodle_then_student_launches_with_no_cli_step(app, client, http):
    moodle = moodle_registrar(http)
    resp = paste(client, moodle, new_invite(app))
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Hs7kQ2b9XcY1mPz" in page and "activate" in page
    assert platforms(app) == [(MOODLE, "Hs7kQ2b9XcY1mPz", ["3"], True)]
    with app.app_context():
        p = db.session.scalars(select(Platform)).one()
        assert (p.auth_login_url, p.auth_token_url, p.key_set_url, p.family) == (
            MOODLE + "/mod/lti/auth.php",
            MOODLE + "/mod/lti/token.php",
            MOODLE + "/mod/lti/certs.php",
            "moodle",
        )
    service = fake_service(http)
    launch = student_launch(launcher(app, client, http, moodle, family="moodle"), deployment_id="3")
    assert launch.status_code == 200, launch.get_data(as_text=True)[:400]
    assert 'class="question-wrapper"' in launch.get_data(as_text=True)
    assert service.calls == 1


def test_register_canvas_stores_no_deployment_and_learns_it_at_first_launch(app, client, http):
    canvas = canvas_registrar(http)
    resp = paste(client, canvas, new_invite(app))
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "learned at the first launch" in page and "Developer Key" in page
    assert platforms(app) == [("https://canvas.instructure.com", "10000000000042", [], True)]
    fake_service(http)
    deployment = "7:0f4e8b1c2d3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c"
    lms = launcher(app, client, http, canvas, family="canvas")
    assert student_launch(lms, deployment_id=deployment).status_code == 200
    assert platforms(app)[0][2] == [deployment]
    with app.app_context():
        row = db.session.scalars(select(Deployment)).one()
        assert row.learned_at is not None and row.active


def test_register_posts_the_client_registration_each_lms_expects(app, client, http):
    canvas = canvas_registrar(http)
    paste(client, canvas, new_invite(app))
    body = canvas.registrations[0]
    assert body["application_type"] == "web"
    assert body["response_types"] == ["id_token"]
    assert body["grant_types"] == ["implicit", "client_credentials"]
    assert body["initiate_login_uri"] == "https://tool.example.com/lti/login"
    assert body["redirect_uris"] == ["https://tool.example.com/lti/launch"]
    assert body["jwks_uri"] == "https://tool.example.com/.well-known/jwks.json"
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["logo_uri"].startswith("https://tool.example.com/")
    assert set(body["scope"].split()) == {
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
        NRPS_SCOPE,
    }
    tool = body[TOOL_CONFIGURATION]
    assert tool["domain"] == "tool.example.com"
    assert tool["target_link_uri"] == "https://tool.example.com/lti/launch"
    assert tool["https://canvas.instructure.com/lti/privacy_level"] == "public"
    by_type = {m["type"]: m for m in tool["messages"]}
    assert by_type["LtiDeepLinkingRequest"]["placements"] == [
        "link_selection",
        "assignment_selection",
    ]
    nav = by_type["LtiResourceLinkRequest"]
    assert nav["placements"] == ["course_navigation"]
    assert nav["https://canvas.instructure.com/lti/visibility"] == "admins"
    assert {"email", "name"} <= set(tool["claims"])


def test_register_asks_only_for_scopes_and_messages_the_platform_advertises(app, client, http):
    moodle = moodle_registrar(http)
    lti = moodle.configuration["https://purl.imsglobal.org/spec/lti-platform-configuration"]
    moodle.configuration["scopes_supported"] = [
        "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    ]
    lti["messages_supported"] = ["LtiResourceLinkRequest"]  # pre-4.1 Moodle lists bare names
    assert paste(client, moodle, new_invite(app)).status_code == 200
    body = moodle.registrations[0]
    assert body["scope"] == "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    assert body[TOOL_CONFIGURATION]["messages"] == []


def test_register_moodle_offers_deep_linking_where_moodle_lists_it(app, client, http):
    moodle = moodle_registrar(http)
    paste(client, moodle, new_invite(app))
    (message,) = moodle.registrations[0][TOOL_CONFIGURATION]["messages"]
    assert message["type"] == "LtiDeepLinkingRequest"
    assert message["placements"] == ["ContentArea"]
    assert (
        "https://canvas.instructure.com/lti/privacy_level"
        not in (moodle.registrations[0][TOOL_CONFIGURATION])
    )


def test_confirmation_closes_toward_the_lms_origin(app, client, http):
    page = paste(client, moodle_registrar(http), new_invite(app)).get_data(as_text=True)
    assert f'data-close-origin="{MOODLE}"' in page
    assert "register.js" in page
    with client.get("/static/register.js") as js:
        assert "org.imsglobal.lti.close" in js.get_data(as_text=True)


def test_second_canvas_school_with_its_own_client_id_registers(app, client, http):
    paste(client, canvas_registrar(http), new_invite(app))
    other = canvas_registrar(
        http,
        config_url="https://other.instructure.com/api/lti/security/openid-configuration",
        client_id="10000000000077",
    )
    other.configuration["registration_endpoint"] = (
        "https://other.instructure.com/api/lti/registrations"
    )
    other.serve(http)
    assert paste(client, other, new_invite(app)).status_code == 200
    assert [p[1] for p in platforms(app)] == ["10000000000042", "10000000000077"]


def test_same_issuer_and_client_id_twice_is_refused(app, client, http):
    moodle = moodle_registrar(http)
    with app.app_context():
        make_platform(client_id="Hs7kQ2b9XcY1mPz", deployments=["1"])
    resp = paste(client, moodle, new_invite(app))
    assert resp.status_code == 409
    assert b"register.already_registered" in resp.data
    assert platforms(app) == [(MOODLE, "Hs7kQ2b9XcY1mPz", ["1"], False)]


# -- invites -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "unknown", "reused", "expired", "revoked"])
def test_register_without_a_valid_invite_is_refused_and_stores_nothing(app, client, http, case):
    moodle = moodle_registrar(http)
    token = new_invite(app)
    if case == "missing":
        token = None
    elif case == "unknown":
        token = token[:-4] + "AAAA"
    elif case == "reused":
        assert paste(client, moodle, token).status_code == 200
        moodle.client_id = "another-client"
    elif case == "expired":
        token = new_invite(app, expires_in=timedelta(minutes=-1))
    elif case == "revoked":
        with app.app_context():
            invites.revoke_invite(token, now=datetime.now(UTC))
            db.session.commit()
    before, calls = platforms(app), len(http.calls)
    resp = paste(client, moodle, token)
    assert resp.status_code == 403
    assert b"register.invite_invalid" in resp.data
    assert b"lti-proctor platform invite" in resp.data
    assert platforms(app) == before
    assert len(http.calls) == calls  # refused before any call to the LMS


def test_invite_token_is_stored_hashed(app, client, http):
    token = new_invite(app)
    with app.app_context():
        stored = db.session.scalars(select(invites.RegistrationInvite)).one()
        assert token not in stored.token_hash


def test_invite_can_forbid_learning_deployments(app, client, http):
    canvas = canvas_registrar(http)
    paste(client, canvas, new_invite(app, learn=False))
    lms = launcher(app, client, http, canvas, family="canvas")
    resp = student_launch(lms, deployment_id="7:abc")
    assert resp.status_code == 400
    assert b"launch.deployment_unknown" in resp.data
    assert platforms(app)[0][2] == []


def test_deployment_of_another_registration_is_never_learned(app, client, http):
    canvas = canvas_registrar(http)
    paste(client, canvas, new_invite(app))
    with app.app_context():
        make_platform(family="canvas", client_id="10000000000099", deployments=["9:theirs"])
    lms = launcher(app, client, http, canvas, family="canvas")
    resp = student_launch(lms, deployment_id="9:theirs")
    assert resp.status_code == 400
    assert b"launch.deployment_unknown" in resp.data
    assert platforms(app)[0][2] == []


# -- the platform's configuration ------------------------------------------------------------------


def _break(registrar, http, how):
    url = registrar.config_url
    if how == "unreachable":
        http.replace(responses.GET, url, body=requests.ConnectionError("refused"))
    elif how == "timeout":
        http.replace(responses.GET, url, body=requests.Timeout("slow"))
    elif how == "http_404":
        http.replace(responses.GET, url, status=404, body="Not Found")
    elif how == "not_json":
        http.replace(responses.GET, url, body="<html>login</html>", content_type="text/html")
    elif how == "too_large":
        big = {**registrar.configuration, "variables": ["x" * 1000] * 400}
        http.replace(responses.GET, url, json=big)
    else:
        config = json.loads(json.dumps(registrar.configuration))
        if how == "no_rs256":
            config["id_token_signing_alg_values_supported"] = ["HS256"]
        elif how == "no_lti_claim":
            del config["https://purl.imsglobal.org/spec/lti-platform-configuration"]
        elif how == "issuer_elsewhere":
            config["issuer"] = "https://evil.example.net"
        elif how == "http_endpoint":
            config["jwks_uri"] = "http://moodle.example.edu/mod/lti/certs.php"
        elif how == "no_registration_endpoint":
            del config["registration_endpoint"]
        http.replace(responses.GET, url, json=config)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("unreachable", "register.config_unreachable"),
        ("timeout", "register.config_unreachable"),
        ("http_404", "register.config_unreachable"),
        ("not_json", "register.config_invalid"),
        ("too_large", "register.config_invalid"),
        ("no_rs256", "register.config_invalid"),
        ("no_lti_claim", "register.config_invalid"),
        ("issuer_elsewhere", "register.config_invalid"),
        ("http_endpoint", "register.config_invalid"),
        ("no_registration_endpoint", "register.config_invalid"),
    ],
)
def test_bad_platform_configuration_is_a_readable_4xx_and_stores_nothing(
    app, client, http, how, reason
):
    moodle = moodle_registrar(http)
    _break(moodle, http, how)
    token = new_invite(app)
    resp = paste(client, moodle, token)
    assert resp.status_code == 400
    assert reason.encode() in resp.data
    assert platform_count(app) == 0
    assert moodle.registrations == []
    with app.app_context():
        assert invites.get_open_invite(token, now=datetime.now(UTC)) is not None


def test_canvas_configuration_needs_instructure_keys_for_the_shared_issuer(app, client, http):
    canvas = canvas_registrar(http)
    canvas.configuration["jwks_uri"] = "https://keys.example.net/jwks"
    resp = paste(client, canvas, new_invite(app))
    assert resp.status_code == 400
    assert b"register.config_invalid" in resp.data
    assert platform_count(app) == 0


def test_canvas_keys_on_instructure_sso_pass_the_issuer_check(app, client, http):
    canvas = canvas_registrar(http)
    assert canvas.configuration["jwks_uri"].startswith(CANVAS_SSO)
    assert paste(client, canvas, new_invite(app)).status_code == 200


def test_configuration_url_must_be_https(app, client, http):
    resp = client.get(
        "/lti/register?"
        + urlencode({"invite": new_invite(app), "openid_configuration": "file:///etc/passwd"})
    )
    assert resp.status_code == 400
    assert b"register.config_invalid" in resp.data


def test_lms_refusing_the_registration_stores_nothing(app, client, http):
    moodle = moodle_registrar(http)
    http.replace(
        responses.POST,
        moodle.configuration["registration_endpoint"],
        status=401,
        body="token_already_used",
    )
    token = new_invite(app)
    resp = paste(client, moodle, token)
    assert resp.status_code == 400
    assert b"register.platform_refused" in resp.data
    assert b"token_already_used" in resp.data
    assert platform_count(app) == 0


def test_registration_answer_without_client_id_stores_nothing(app, client, http):
    moodle = moodle_registrar(http)
    http.replace(responses.POST, moodle.configuration["registration_endpoint"], json={"scope": ""})
    resp = paste(client, moodle, new_invite(app))
    assert resp.status_code == 400
    assert b"register.config_invalid" in resp.data
    assert platform_count(app) == 0


# -- Canvas's JSON configuration URL ---------------------------------------------------------------


def test_canvas_json_has_the_shape_canvas_documents(client):
    resp = client.get("/lti/config/canvas.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.get_json()
    for required in ("title", "description", "oidc_initiation_url", "target_link_uri"):
        assert isinstance(doc[required], str) and doc[required]
    assert doc["oidc_initiation_url"] == "https://tool.example.com/lti/login"
    assert doc["target_link_uri"] == "https://tool.example.com/lti/launch"
    assert doc["public_jwk_url"] == "https://tool.example.com/.well-known/jwks.json"
    assert "public_jwk" not in doc  # one of the two, never both
    assert doc["custom_fields"] == {}
    assert all(s.startswith("https://purl.imsglobal.org/spec/") for s in doc["scopes"])
    (ext,) = doc["extensions"]
    assert ext["platform"] == "canvas.instructure.com"
    assert ext["privacy_level"] in ("public", "name_only", "email_only", "anonymous")
    assert ext["domain"] == "tool.example.com"
    placements = {p["placement"]: p for p in ext["settings"]["placements"]}
    assert set(placements) == {"link_selection", "assignment_selection", "course_navigation"}
    for name in ("link_selection", "assignment_selection"):
        assert placements[name]["message_type"] == "LtiDeepLinkingRequest"
    nav = placements["course_navigation"]
    assert nav["message_type"] == "LtiResourceLinkRequest"
    assert nav["visibility"] == "admins" and nav["required_permissions"]
    for placement in placements.values():
        assert placement["target_link_uri"] == "https://tool.example.com/lti/launch"
