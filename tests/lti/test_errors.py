"""Launch errors: reason codes, the pylti1p3 text mapping, and the error page and log line."""

from __future__ import annotations

import logging

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from pylti1p3.exception import LtiException, OIDCException

from lti_proctor.lti.errors import (
    LAUNCH_REASONS,
    REASON_TEXT,
    LaunchError,
    LaunchReason,
    claim_missing,
    classify_lti_exception,
)
from tests.launches import LaunchBuilder


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("Could not find issuer", LaunchReason.LOGIN_INVALID, "iss"),
        ("Could not find login hint", LaunchReason.LOGIN_INVALID, "login_hint"),
        ("Could not find registration details", LaunchReason.REGISTRATION_UNKNOWN, None),
        ("Registration not found.", LaunchReason.REGISTRATION_UNKNOWN, None),
        ("Client id not registered for this issuer", LaunchReason.REGISTRATION_UNKNOWN, None),
        ("Missing state param", LaunchReason.STATE_MISMATCH, "no state"),
        ("State not found", LaunchReason.STATE_MISSING, None),
        ("Invalid Nonce", LaunchReason.NONCE_INVALID, None),
        ('"nonce" is empty', LaunchReason.CLAIM_MISSING, "nonce"),
        ('"iss" is empty', LaunchReason.CLAIM_MISSING, "iss"),
        ("Missing id_token", LaunchReason.TOKEN_INVALID, "id_token"),
        ("Invalid id_token, JWT must contain 3 parts", LaunchReason.TOKEN_INVALID, "JWT"),
        ("Invalid JWT format, can't be decoded", LaunchReason.TOKEN_INVALID, "decoded"),
        ("JWT KID not found", LaunchReason.KID_UNKNOWN, "kid"),
        ("Unable to find public key", LaunchReason.KID_UNKNOWN, None),
        ("JWT ALG not found", LaunchReason.ALGORITHM_NOT_ALLOWED, "alg"),
        ("Can't decode id_token: Signature has expired", LaunchReason.TOKEN_EXPIRED, None),
        (
            "Can't decode id_token: The token is not yet valid (iat)",
            LaunchReason.TOKEN_NOT_YET_VALID,
            None,
        ),
        (
            "Can't decode id_token: Signature verification failed",
            LaunchReason.SIGNATURE_INVALID,
            None,
        ),
        ("Can't decode id_token: Invalid audience", LaunchReason.AUDIENCE_INVALID, None),
        ("Can't decode id_token: Invalid header padding", LaunchReason.TOKEN_INVALID, None),
        ("Error during fetch URL https://lms/jwks: timeout", LaunchReason.JWKS_UNAVAILABLE, None),
        (
            "Invalid response from https://lms/jwks. Must be JSON",
            LaunchReason.JWKS_UNAVAILABLE,
            None,
        ),
        ("Unable to find deployment", LaunchReason.DEPLOYMENT_UNKNOWN, None),
        ("deployment_id is not set in jwt body", LaunchReason.CLAIM_MISSING, "deployment_id"),
        ("Invalid message type", LaunchReason.CLAIM_MISSING, "message_type"),
        ("Unrecognized message type", LaunchReason.MESSAGE_UNSUPPORTED, None),
        ("Must have a user (sub)", LaunchReason.CLAIM_MISSING, "sub"),
        ("Incorrect version, expected 1.3.0", LaunchReason.VERSION_UNSUPPORTED, None),
        ("Missing Roles Claim", LaunchReason.CLAIM_MISSING, "roles"),
        ("Missing Resource Link Id", LaunchReason.CLAIM_MISSING, "resource_link.id"),
        ("Missing Deep Linking Settings", LaunchReason.CLAIM_MISSING, "deep_linking_settings"),
        (
            "Must support resource link placement types",
            LaunchReason.CLAIM_INVALID,
            "accept_types",
        ),
        ("Must support a presentation type", LaunchReason.CLAIM_INVALID, "document_targets"),
    ],
)
def test_classify_maps_pylti1p3_text_to_a_reason(
    text: str, reason: LaunchReason, detail: str | None
) -> None:
    error = classify_lti_exception(LtiException(text))
    assert error.reason is reason
    if detail is None:
        assert error.detail is None
    else:
        assert error.detail is not None and detail in error.detail


def test_classify_falls_back_to_launch_invalid_without_echoing_the_text() -> None:
    error = classify_lti_exception(OIDCException("something new, token=eyJsecret"))
    assert error.reason is LaunchReason.INVALID
    assert "eyJ" not in str(error)


def test_every_reason_has_a_page_text_and_policy_refusals_are_403() -> None:
    assert set(REASON_TEXT) == LAUNCH_REASONS
    for reason, text in REASON_TEXT.items():
        assert reason.value.startswith("launch.")
        assert text.what.endswith(".") and text.next_step.endswith(".")
        policy = reason in (
            LaunchReason.DEPLOYMENT_INACTIVE,
            LaunchReason.ROLE_NOT_ALLOWED,
            LaunchReason.EXAM_NOT_OPEN,
            LaunchReason.ACCESS_CODE_EXPOSED,
        )
        missing = reason is LaunchReason.EXAM_NOT_FOUND  # issue 8: a readable 404
        assert text.status == (404 if missing else 403 if policy else 400)


def test_launch_error_detail_is_one_short_line() -> None:
    error = LaunchError(LaunchReason.KID_UNKNOWN, "kid\n" + "x" * 500)
    assert error.detail is not None
    assert "\n" not in error.detail and len(error.detail) <= 120
    assert claim_missing("roles").detail == "missing claim: roles"
    assert str(claim_missing("sub")) == "launch.claim_missing: missing claim: sub"


def test_refused_launch_page_says_what_happened_and_logs_without_the_token(
    app: Flask,
    client: FlaskClient,
    http: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = LaunchBuilder(app, client, http)
    login = b.login()
    token = b.sign(b.claims(login, drop=["roles"]))

    with caplog.at_level(logging.INFO):
        resp = b.post(token, login.state)

    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "The launch lacks information the tool needs." in page
    assert "What you can do:" in page
    assert "missing claim: roles" in page
    (record,) = [r for r in caplog.records if "launch refused" in r.getMessage()]
    message = record.getMessage()
    assert "reason=launch.claim_missing" in message and "missing claim: roles" in message
    request_id = message.split("request_id=")[1].split()[0]
    assert f'<code class="request-id">{request_id}</code>' in page
    for part in token.split("."):
        assert part not in caplog.text
    assert login.nonce not in caplog.text


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"state": "state-x"},
        {"id_token": "a.b.c", "state": "state-x"},
        {"id_token": "", "state": ""},
        {"id_token": "x" * 10000, "state": "s" * 5000},
    ],
    ids=["empty", "state-only", "garbage-jwt", "blank", "huge"],
)
def test_garbage_launch_posts_get_a_4xx_page_never_a_500(
    client: FlaskClient, form: dict[str, str]
) -> None:
    resp = client.post("/lti/launch", data=form)
    assert 400 <= resp.status_code < 500
    assert 'class="reason">launch.' in resp.get_data(as_text=True)


def test_garbage_jwt_with_a_valid_state_cookie_is_token_invalid(
    app: Flask, client: FlaskClient, http: responses.RequestsMock
) -> None:
    b = LaunchBuilder(app, client, http)
    login = b.login()
    for token in ("a.b.c", "e30.W10.", "bm90IGpzb24.e30.x"):
        resp = b.post(token, login.state)
        assert resp.status_code == 400
        assert '<code class="reason">launch.token_invalid</code>' in resp.get_data(as_text=True)


LIS_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


def _body(message_type: str, **claims: object) -> dict[str, object]:
    lti = "https://purl.imsglobal.org/spec/lti/claim/"
    body: dict[str, object] = {
        "sub": "u1",
        lti + "message_type": message_type,
        lti + "version": "1.3.0",
        lti + "roles": [LIS_ROLE],
        lti + "resource_link": {"id": "r1"},
    }
    body.update(claims)
    return {k: v for k, v in body.items() if v is not None}


_DL_OK = {"deep_link_return_url": "https://lms/return", "accept_types": ["ltiResourceLink"]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_body("LtiResourceLinkRequest", sub=None), LaunchReason.CLAIM_MISSING),
        (
            _body(
                "LtiResourceLinkRequest",
                **{"https://purl.imsglobal.org/spec/lti/claim/version": "1.1"},
            ),
            LaunchReason.VERSION_UNSUPPORTED,
        ),
        (
            _body(
                "LtiResourceLinkRequest",
                **{"https://purl.imsglobal.org/spec/lti/claim/roles": None},
            ),
            LaunchReason.CLAIM_MISSING,
        ),
        (
            _body(
                "LtiResourceLinkRequest",
                **{"https://purl.imsglobal.org/spec/lti/claim/resource_link": {}},
            ),
            LaunchReason.CLAIM_MISSING,
        ),
        (_body("LtiDeepLinkingRequest"), LaunchReason.CLAIM_MISSING),
        (
            _body("LtiDeepLinkingRequest", **{DL: {**_DL_OK, "accept_types": ["file"]}}),
            LaunchReason.CLAIM_INVALID,
        ),
        (
            _body(
                "LtiDeepLinkingRequest",
                **{DL: {**_DL_OK, "accept_presentation_document_targets": []}},
            ),
            LaunchReason.CLAIM_INVALID,
        ),
    ],
    ids=["sub", "version", "roles", "resource-link", "dl-settings", "dl-types", "dl-targets"],
)
def test_pylti1p3_validator_messages_still_classify(
    body: dict[str, object], reason: LaunchReason
) -> None:
    """pylti1p3's message validators raise these texts; if a release rewords one, this fails."""
    from pylti1p3.message_validators import get_validators

    with pytest.raises(LtiException) as raised:
        for validator in get_validators():
            if validator.can_validate(body):
                validator.validate(body)
    assert classify_lti_exception(raised.value).reason is reason
