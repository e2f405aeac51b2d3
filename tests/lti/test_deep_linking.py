from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from lti_proctor.lti import claims as c
from lti_proctor.lti.deep_linking import (
    CONTENT_ITEMS,
    DATA,
    DeepLinkingError,
    LineItemRequest,
    ResourceLinkItem,
    ResponseSigner,
    build_response,
    parse_settings,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "launches"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fixture_settings(family: str) -> dict[str, object]:
    path = FIXTURES / f"{family}-deep-linking-request.json"
    claims = json.loads(path.read_text())["claims"]
    return dict(claims[c.DEEP_LINKING_SETTINGS])


def signer(issuer: str = "https://moodle.example.edu") -> ResponseSigner:
    return ResponseSigner(
        client_id="qJFGPTxkK5WNQyx", platform_issuer=issuer, deployment_id="1", kid="k1", key=KEY
    )


def item() -> ResourceLinkItem:
    return ResourceLinkItem(
        title="Final exam",
        url="https://tool.example.com/lti/launch",
        custom={"exam": "ex_abc"},
        line_item=LineItemRequest(
            label="Proctoring: Final exam",
            score_maximum=100,
            resource_id="ex_abc",
            tag="proctoring",
        ),
    )


def decode(token: str, audience: str = "https://moodle.example.edu") -> dict[str, object]:
    return jwt.decode(token, KEY.public_key(), algorithms=["RS256"], audience=audience)


def test_moodle_settings_accept_several_resource_links_and_line_items():
    settings = parse_settings(fixture_settings("moodle"))
    assert settings.accepts_resource_link
    assert settings.accept_multiple is True
    assert settings.auto_create is False
    assert settings.accept_lineitem is True
    assert settings.return_url.startswith("https://moodle.example.edu/mod/lti/contentitem_return")
    assert settings.data is None


def test_canvas_settings_take_the_comma_string_media_types_and_one_item():
    raw = fixture_settings("canvas")
    raw["accept_types"] = []  # Canvas may say it only through accept_media_types
    raw["data"] = "canvas-signed-data"
    settings = parse_settings(raw)
    assert settings.accepts_resource_link
    assert settings.accept_multiple is False
    assert settings.data == "canvas-signed-data"


@pytest.mark.parametrize(
    "raw",
    [None, {}, {"deep_link_return_url": "javascript:alert(1)"}, {"deep_link_return_url": 7}],
)
def test_settings_without_a_usable_return_url_are_refused(raw):
    with pytest.raises(DeepLinkingError):
        parse_settings(raw)


def test_response_is_signed_for_the_platform_and_carries_the_link_and_its_column():
    raw = fixture_settings("moodle")
    raw["data"] = "opaque-42"
    token = build_response(parse_settings(raw), [item()], signer())
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    body = decode(token)
    assert body["iss"] == "qJFGPTxkK5WNQyx"
    assert body[c.MESSAGE_TYPE] == "LtiDeepLinkingResponse"
    assert body[c.VERSION] == "1.3.0"
    assert body[c.DEPLOYMENT_ID] == "1"
    assert body[DATA] == "opaque-42"
    assert body["nonce"] and body["jti"]
    assert body[CONTENT_ITEMS] == [
        {
            "type": "ltiResourceLink",
            "title": "Final exam",
            "url": "https://tool.example.com/lti/launch",
            "custom": {"exam": "ex_abc"},
            "lineItem": {
                "label": "Proctoring: Final exam",
                "scoreMaximum": 100,
                "resourceId": "ex_abc",
                "tag": "proctoring",
            },
        }
    ]


def test_response_leaves_out_the_line_item_where_the_platform_declines_them():
    raw = fixture_settings("moodle")
    raw["accept_lineitem"] = False
    body = decode(build_response(parse_settings(raw), [item()], signer()))
    assert "lineItem" not in body[CONTENT_ITEMS][0]  # type: ignore[index]
    assert DATA not in body


def test_response_refuses_what_the_platform_does_not_accept():
    raw = fixture_settings("canvas")
    raw["accept_media_types"] = "image/*"
    raw["accept_types"] = ["file"]
    with pytest.raises(DeepLinkingError):
        build_response(parse_settings(raw), [item()], signer("https://canvas.instructure.com"))
    one = parse_settings(fixture_settings("canvas"))
    with pytest.raises(DeepLinkingError):
        build_response(one, [item(), item()], signer("https://canvas.instructure.com"))
