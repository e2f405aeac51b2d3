from __future__ import annotations

import logging

import pytest

from tests.secret_scan import find_secrets, record_text

log = logging.getLogger("tests.secret_scan")

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIzIiwiaXNzIjoiaHR0cHMifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "line",
    [
        PEM,
        f"id_token={JWT}",
        "Authorization: Bearer moodlefake-token-3",
        "Authorization: bearer abcdef123456789",
        "sealed gAAAAABnZ0xkV2x5b2xkS2V5X2Zvcl90ZXN0aW5nX29ubHlfZXhhbXBsZQ==",
        "POST /webhooks/trustexam/start?sig=Zb3k9QvT0tHc1mXq2Yw8Rr7LpAa5Nn4Ee6",
        "headers {'X-Tool-Webhook-Secret': 'Zb3k9QvT0tHc1mXq2Yw8Rr7LpAa5Nn4Ee6'}",
        'answer {"access_token": "tok-123456", "expires_in": 3600}',
        "mounted the SDK with sdk-token-12",
        "canvasfake-token-2 expired",
        "X-Authorization: test-api-key-7c1d",
        "failed insert (access_code='QUIZ-7731')",
    ],
)
def test_scanner_finds_each_kind_of_secret(line: str) -> None:
    assert find_secrets(line)


@pytest.mark.parametrize(
    "line",
    [
        "POST /webhooks/trustexam/start?sig=[redacted] 204",
        "Authorization: Bearer [redacted]",
        "outbox job 3 (ags.publish_status) succeeded",
        "launch refused reason=launch.nonce_replayed request_id=1a2b3c",
        "[SQL parameters hidden due to hide_parameters=True]",
    ],
)
def test_scanner_leaves_clean_lines_alone(line: str) -> None:
    assert find_secrets(line) == []


def test_record_text_includes_tracebacks() -> None:
    try:
        raise ValueError("token sdk-token-4 rejected")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    assert find_secrets(record_text([record]))


@pytest.mark.secrets_in_logs
def test_a_marked_test_may_log_a_secret_on_purpose(caplog: pytest.LogCaptureFixture) -> None:
    log.warning("access code %s", "QUIZ-7731")
    assert "QUIZ-7731" in caplog.text
