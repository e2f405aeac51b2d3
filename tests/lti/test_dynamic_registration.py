"""lti.dynamic_registration and lti.tool_config: the protocol's pure parts."""

from __future__ import annotations

import pytest

from lti_proctor.lti.dynamic_registration import (
    parse_platform_configuration,
    parse_registration_answer,
)
from lti_proctor.lti.errors import RegisterError
from lti_proctor.lti.tool_config import ToolIdentity, client_registration
from lti_proctor.reasons import Reason
from tests.fakes.registration import (
    CANVAS_SCHOOL,
    MOODLE,
    TOOL_CONFIGURATION,
    canvas_configuration,
    moodle_configuration,
)

MOODLE_CONFIG_URL = MOODLE + "/mod/lti/openid-configuration.php"


def test_moodle_configuration_parses_endpoints_scopes_and_messages():
    parsed = parse_platform_configuration(MOODLE_CONFIG_URL, moodle_configuration())
    assert parsed.issuer == MOODLE and parsed.family == "moodle"
    assert parsed.jwks_uri == MOODLE + "/mod/lti/certs.php"
    assert parsed.messages["LtiDeepLinkingRequest"] == ("ContentArea",)
    assert parsed.messages["LtiResourceLinkRequest"] is None


@pytest.mark.parametrize(
    "config_url",
    [
        "https://canvas.example.edu/api/lti/security/openid-configuration",  # vanity domain
        CANVAS_SCHOOL + "/api/lti/security/openid-configuration",
        "https://sso.canvaslms.com/api/lti/security/openid-configuration",
    ],
)
def test_canvas_shared_issuer_is_accepted_from_school_vanity_or_sso_hosts(config_url):
    parsed = parse_platform_configuration(config_url, canvas_configuration())
    assert parsed.issuer == "https://canvas.instructure.com"
    assert parsed.account_name == "Example University"


def test_canvas_beta_issuer_needs_beta_hosts():
    config = canvas_configuration()
    config["issuer"] = "https://canvas.beta.instructure.com"
    with pytest.raises(RegisterError) as caught:
        parse_platform_configuration(CANVAS_SCHOOL + "/x", config)
    assert caught.value.reason is Reason.REGISTER_CONFIG_INVALID
    config["jwks_uri"] = "https://sso.beta.canvaslms.com/api/lti/security/jwks"
    config["authorization_endpoint"] = "https://sso.beta.canvaslms.com/api/lti/authorize_redirect"
    assert parse_platform_configuration(CANVAS_SCHOOL + "/x", config).issuer.endswith(
        "beta.instructure.com"
    )


def test_loopback_is_allowed_only_when_asked():
    config = moodle_configuration("http://127.0.0.1:5001")
    url = "http://127.0.0.1:5001/mod/lti/openid-configuration.php"
    with pytest.raises(RegisterError):
        parse_platform_configuration(url, config)
    assert parse_platform_configuration(url, config, allow_loopback=True).family == "moodle"


def test_registration_answers_of_moodle_and_canvas():
    moodle = parse_registration_answer(
        {"client_id": "Hs7kQ2", "scope": "a b", TOOL_CONFIGURATION: {"deployment_id": "3"}}
    )
    assert (moodle.client_id, moodle.deployment_id, moodle.scopes) == ("Hs7kQ2", "3", ("a", "b"))
    canvas = parse_registration_answer({"client_id": "10000000000042", TOOL_CONFIGURATION: {}})
    assert canvas.deployment_id is None


@pytest.mark.parametrize("answer", [[], {"client_id": ""}, {"client_id": None}, {}])
def test_registration_answer_without_client_id_is_refused(answer):
    with pytest.raises(RegisterError) as caught:
        parse_registration_answer(answer)
    assert caught.value.reason is Reason.REGISTER_CONFIG_INVALID


def test_client_registration_for_canvas_offers_results_to_teachers_only():
    offer = parse_platform_configuration(
        CANVAS_SCHOOL + "/api/lti/security/openid-configuration", canvas_configuration()
    ).offer
    body = client_registration(ToolIdentity("https://tool.example.com"), offer)
    nav = next(
        m for m in body[TOOL_CONFIGURATION]["messages"] if m["type"] == "LtiResourceLinkRequest"
    )
    assert all("Learner" not in role for role in nav["roles"])
