from __future__ import annotations

import logging

import pytest
from flask import Flask

from lti_proctor.logs import redact


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('"POST /webhooks/trustexam/start?sig=s3cr3t-value HTTP/1.1" 200 -', "s3cr3t-value"),
        ('"POST /webhooks/trustexam/finish?attempt_id=1&sig=abc123 HTTP/1.1" 200', "abc123"),
        ('"GET /exam/open/eyJhbGciOi.payload.sig HTTP/1.1" 200 -', "eyJhbGciOi.payload.sig"),
        ('"GET /instructor/InsTrUcToRtOkEn/attempts HTTP/1.1" 200 -', "InsTrUcToRtOkEn"),
        ('"GET /report?api_token=key-123 HTTP/1.1" 200 -', "key-123"),
        ('"GET /lti/register?invite=InV1te-T0k HTTP/1.1" 403 -', "InV1te-T0k"),
        ('"GET /lti/register?invite=a&registration_token=eyJreg.x.y HTTP/1.1" 200', "eyJreg.x.y"),
        (
            '"GET /api/lti/authorize?login_hint=3&lti_message_hint=eyJh.eyJ2.c2ln HTTP/1.1" 302',
            "eyJh.eyJ2.c2ln",
        ),
    ],
)
def test_access_log_line_loses_its_credential(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_plain_lines_are_left_alone() -> None:
    line = '"GET /.well-known/jwks.json HTTP/1.1" 200 -'
    assert redact(line) == line


def test_served_webhook_request_is_logged_without_its_secret(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # What werkzeug's request handler logs for each request, through the app's filter.
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logging.getLogger("werkzeug").info(
            '%s - - [%s] "%s" %s -',
            "127.0.0.1",
            "21/Nov/2026 10:00:00",
            "POST /webhooks/trustexam/start?sig=TOPSECRET HTTP/1.1",
            "200",
        )
    assert "TOPSECRET" not in caplog.text
    assert "sig=[redacted]" in caplog.text
