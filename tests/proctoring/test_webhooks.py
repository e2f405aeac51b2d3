"""Webhook reading: our secret is checked in constant time, then start/finish bodies are parsed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.datastructures import Headers, MultiDict

from lti_proctor.proctoring.webhooks import (
    WebhookAuthError,
    decode_body,
    find_attempt_ref,
    parse_event,
    verify_webhook,
)

OURS = "9b2f0c7e-3c1a-4f7e-9d41-1b8a6f0e2a55"
SECRET = "s3cret-per-attempt"

START = {
    "event": "start",
    "status": "active",
    "attempt": {
        "id": 884211,
        "attempt": 1,
        "status": "active",
        "started_at": "2026-03-02T08:00:14Z",
    },
    "assignment": {"id": 55120, "external_id": "lti:7f1c"},
    "student": {"id": 310077, "external_id": "lti:0d3e"},
    "session_data": {"external_id": OURS},
    "metadata": {"application": "browser"},
    "timestamp": "2026-03-02T08:00:14Z",
    "attempt_id": OURS,
}
FINISH = {
    **START,
    "event": "finish",
    "status": "closed",
    "attempt": {
        "id": 884211,
        "attempt": 1,
        "status": "closed",
        "started_at": "2026-03-02T08:00:14Z",
        "finished_at": "2026-03-02T09:12:40Z",
        "credibility": 72,
    },
    "report_url": "https://app.trustexam.test/report/1",
    "timestamp": "2026-03-02T09:12:41Z",
}


# -- verify_webhook ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"X-Tool-Webhook-Secret": SECRET}, {"sig": SECRET}),
        ({"x-tool-webhook-secret": SECRET}, {}),
        ({}, {"sig": SECRET}),
        (Headers([("X-TOOL-WEBHOOK-SECRET", SECRET)]), MultiDict([("sig", SECRET)])),
    ],
    ids=["both", "header-only-lowercase", "query-only", "werkzeug-types"],
)
def test_verify_accepts_our_secret(headers: Any, query: Any) -> None:
    verify_webhook(headers, query, expected=SECRET)


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({}, {}, SECRET),
        ({"X-Tool-Webhook-Secret": "wrong"}, {"sig": SECRET}, SECRET),
        ({"X-Tool-Webhook-Secret": SECRET}, {"sig": "wrong"}, SECRET),
        ({"X-Tool-Webhook-Secret": "wrong"}, {}, SECRET),
        ({}, {"sig": SECRET[:-1]}, SECRET),
        ({"X-Tool-Webhook-Secret": ""}, {"sig": ""}, ""),
        ({"X-Tool-Webhook-Secret": SECRET}, {"sig": SECRET}, None),
        ({"Authorization": SECRET}, {"api_token": SECRET}, SECRET),
    ],
    ids=[
        "missing",
        "wrong-header",
        "wrong-query",
        "wrong-header-only",
        "prefix",
        "empty-expected",
        "no-expected",
        "other-names",
    ],
)
def test_verify_rejects_missing_or_wrong_secret_without_saying_which(
    headers: dict[str, str], query: dict[str, str], expected: str | None
) -> None:
    with pytest.raises(WebhookAuthError) as info:
        verify_webhook(headers, query, expected=expected)
    assert str(info.value) == "The webhook's secret is missing or wrong."


# -- find_attempt_ref ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ref"),
    [
        (START, OURS),
        ({"attempt_id": OURS, "session_data": {"external_id": "other"}}, OURS),
        ({"attempt_id": 884211, "session_data": {"external_id": OURS}}, OURS),
        ({"attempt_id": "884211", "external_id": OURS}, OURS),
        ({"session_data": {"external_id": OURS}, "external_id": "x"}, OURS),
        ({"external_id": OURS}, OURS),
        ({"tool_attempt": OURS}, OURS),
        ({"data": {"meta": {"attemptRef": OURS}}}, OURS),
        ({"attempt": {"id": 884211}, "attempt_id": 884211}, None),
        ({}, None),
        ({"session_data": "garbage", "attempt_id": ["x"]}, None),
    ],
    ids=[
        "example",
        "post-echo-first",
        "numeric-echo-skipped",
        "numeric-string-skipped",
        "session-data",
        "top-external-id",
        "any-attempt-key",
        "nested-attempt-key",
        "service-ids-only",
        "empty",
        "garbage",
    ],
)
def test_find_attempt_ref_follows_receiver_rules(body: dict[str, Any], ref: str | None) -> None:
    assert find_attempt_ref(body) == ref


# -- decode_body / parse_event -------------------------------------------------------------------


def test_parse_start_event_reads_example_payload() -> None:
    event = parse_event("start", json.dumps(START).encode(), "application/json")
    assert event.kind == "start"
    assert event.attempt_ref == OURS
    assert event.service_attempt_id == "884211"
    assert event.status == "active"
    assert event.started_at == datetime(2026, 3, 2, 8, 0, 14, tzinfo=UTC)
    assert event.finished_at is None
    assert event.occurred_at == datetime(2026, 3, 2, 8, 0, 14, tzinfo=UTC)
    assert event.report_url is None
    assert event.raw == START


def test_parse_finish_event_reads_times_and_report_url() -> None:
    event = parse_event("finish", json.dumps(FINISH).encode(), "application/json; charset=utf-8")
    assert (event.kind, event.status) == ("finish", "closed")
    assert event.finished_at == datetime(2026, 3, 2, 9, 12, 40, tzinfo=UTC)
    assert event.report_url == "https://app.trustexam.test/report/1"


def test_parse_form_body_with_bracket_keys() -> None:
    form = urlencode(
        {
            "event": "finish",
            "status": "closed",
            "attempt[id]": "884211",
            "attempt[finished_at]": "2026-03-02T09:12:40Z",
            "session_data[external_id]": OURS,
            "attempt_id": OURS,
        }
    ).encode()
    event = parse_event("finish", form, "application/x-www-form-urlencoded")
    assert event.attempt_ref == OURS
    assert event.service_attempt_id == "884211"
    assert event.finished_at == datetime(2026, 3, 2, 9, 12, 40, tzinfo=UTC)
    assert event.raw["session_data"] == {"external_id": OURS}


@pytest.mark.parametrize(
    ("body", "service_id"),
    [
        ({"attempt": {"id": 5}, "attempt_id": 7, "id": 9}, "5"),
        ({"attempt_id": 7, "id": 9}, "7"),
        ({"attempt_id": "7"}, "7"),
        ({"attempt_id": OURS, "id": 9}, "9"),
        ({"attempt": "closed", "attempt_id": OURS}, None),
        ({"attempt": {"id": True}}, None),
    ],
)
def test_service_attempt_id_from_attempt_id_numeric_echo_or_id(
    body: dict[str, Any], service_id: str | None
) -> None:
    event = parse_event("finish", json.dumps(body).encode(), "application/json")
    assert event.service_attempt_id == service_id


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"", "application/json"),
        (b"not json at all {", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"\xff\xfe\x00", None),
        (
            b'{"attempt": 5, "status": 3, "timestamp": "yesterday", "report_url": "javascript:x"}',
            "text/plain",
        ),
    ],
    ids=["empty", "broken-json", "json-list", "binary", "odd-types"],
)
def test_parse_unknown_shapes_defensively(raw: bytes, content_type: str | None) -> None:
    event = parse_event("start", raw, content_type)
    assert event.kind == "start"
    assert event.attempt_ref is None
    assert event.occurred_at is None
    assert event.report_url is None


def test_unknown_status_is_kept_as_sent() -> None:
    event = parse_event("finish", b'{"status": "Reviewed"}', "application/json")
    assert event.status == "reviewed"


def test_unix_timestamps_are_read() -> None:
    event = parse_event("start", b'{"timestamp": 1772438414}', "application/json")
    assert event.occurred_at == datetime.fromtimestamp(1772438414, tz=UTC)


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown webhook event"):
        parse_event("review", b"{}", "application/json")


def test_decode_body_without_content_type_tries_json_then_form() -> None:
    assert decode_body(b'{"a": 1}', None) == {"a": 1}
    assert decode_body(b"a=1&b[c]=2", "") == {"a": "1", "b": {"c": "2"}}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("report_url", "https://app.trustexam.test/report/" + "r" * 2100),
        ("attempt_id_of_service", "9" * 200),
    ],
)
def test_values_over_the_columns_limits_read_as_absent(field: str, value: str) -> None:
    body = json.loads(json.dumps(FINISH))
    if field == "report_url":
        body["report_url"] = value
        body.get("attempt", {}).pop("report_url", None)
    else:
        body["attempt"] = {**body.get("attempt", {}), "id": value}
    event = parse_event("finish", json.dumps(body).encode(), "application/json")
    assert event.kind == "finish"
    assert (event.report_url if field == "report_url" else event.service_attempt_id) is None
