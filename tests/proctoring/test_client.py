"""The service client against a faithful fake of the TrustExam HTTP contract (responses)."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests
import responses
from flask import Flask
from responses import matchers

from lti_proctor.proctoring.client import (
    ProctoringClient,
    from_config,
    get_client,
    parse_retry_after,
)
from lti_proctor.proctoring.errors import ProviderRejectedError, ProviderUnavailableError
from lti_proctor.proctoring.profiles import REQUIRED_SETTINGS, load_profiles
from lti_proctor.proctoring.types import Profile, SessionRequest

API = "https://api.trustexam.test/api"
REPORTS = "https://trust-rating.trustexam.test/api/v1"
SESSION_URL = f"{API}/external-session/assignment.json"
KEY = "api-key-0123456789"
REPORT_KEY = "report-key-abcdef"
ATTEMPT = "9b2f0c7e-3c1a-4f7e-9d41-1b8a6f0e2a55"
SECRET = "per-attempt-secret-xyz"
PROFILES_DIR = Path(__file__).resolve().parents[2] / "configs" / "profiles"

OK_BODY = {
    "external_session": {"token": "tok-123", "id": 123456},
    "report_url": "https://app.trustexam.test/assignments/1/students/2",
    "session_url": "https://app.trustexam.test/session/abc",
}


class Sleeps(list[float]):
    """A sleep() stand-in that records the delays asked for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps) -> ProctoringClient:
    return ProctoringClient(
        API,
        KEY,
        report_base=REPORTS,
        report_api_key=REPORT_KEY,
        timeout=(1.0, 2.0),
        max_retries=2,
        sleep=sleeps,
        rng=random.Random(7),
    )


@pytest.fixture(scope="module")
def standard() -> Profile:
    return load_profiles(PROFILES_DIR)["standard"]


def make_request(profile: Profile, **overrides: object) -> SessionRequest:
    values: dict[str, object] = {
        "assignment_external_id": "lti:7f1c9a0e4b2d8c6a1e3f5b7d9c0a2e4f",
        "assignment_name": "Midterm \u2013 Physics 101",
        "student_external_id": "lti:0d3e5a7c9b1f2e4d6c8a0b2d4f6e8a1c",
        "student_name": "Aigerim Sadykova",
        "attempt_id": ATTEMPT,
        "profile": profile,
        "webhook_start_url": "https://tool.example.com/webhooks/trustexam/start",
        "webhook_finish_url": "https://tool.example.com/webhooks/trustexam/finish",
        "webhook_secret": SECRET,
        "external_url": "https://tool.example.com/exam/9b2f0c7e",
        "exit_url": "https://tool.example.com/exam/9b2f0c7e/done",
    }
    values.update(overrides)
    return SessionRequest(**values)  # type: ignore[arg-type]


def sent_body(call: responses.Call) -> dict[str, object]:
    body = call.request.body
    assert body is not None
    return json.loads(body)  # type: ignore[no-any-return]


def test_upsert_sends_contract_body_and_headers(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, json=OK_BODY)
    client.upsert_session(
        make_request(
            standard,
            student_firstname="Aigerim",
            student_lastname="Sadykova",
            student_email="a.sadykova@example.edu",
            group_external_id="lti:course",
            group_name="Physics 101",
        )
    )

    (call,) = http.calls
    headers = call.request.headers
    assert headers["X-Authorization"] == KEY
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert call.request.url == SESSION_URL
    assert sent_body(call) == {
        "assignment": {
            "external_id": "lti:7f1c9a0e4b2d8c6a1e3f5b7d9c0a2e4f",
            "name": "Midterm \u2013 Physics 101",
            "type": "external",
            "application": "browser",
            "is_proctoring": True,
            "external_url": "https://tool.example.com/exam/9b2f0c7e",
            "settings": {
                "exit_url": "https://tool.example.com/exam/9b2f0c7e/done",
                "proctoring_settings": dict(standard.proctoring_settings),
                "webhook": {
                    "start_url": "https://tool.example.com/webhooks/trustexam/start",
                    "finish_url": "https://tool.example.com/webhooks/trustexam/finish",
                    "post": {"attempt_id": ATTEMPT},
                    "query": {"sig": SECRET, "attempt_id": ATTEMPT},
                    "headers": {"X-Tool-Webhook-Secret": SECRET},
                },
            },
        },
        "student": {
            "external_id": "lti:0d3e5a7c9b1f2e4d6c8a0b2d4f6e8a1c",
            "name": "Aigerim Sadykova",
            "firstname": "Aigerim",
            "lastname": "Sadykova",
            "email": "a.sadykova@example.edu",
        },
        "application": "browser",
        "group": {"external_id": "lti:course", "name": "Physics 101"},
        "session_data": {"external_id": ATTEMPT},
    }


def test_upsert_sends_full_settings_with_profile_content_protect(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, json=OK_BODY)
    settings = {**standard.proctoring_settings, "content_protect": 0}
    profile = Profile(name="custom", proctoring_settings=settings, application="tray")
    client.upsert_session(make_request(profile))

    body = sent_body(http.calls[0])
    sent = body["assignment"]["settings"]["proctoring_settings"]  # type: ignore[index]
    assert REQUIRED_SETTINGS <= set(sent)
    assert sent["content_protect"] == 0
    assert body["application"] == "tray"
    assert body["assignment"]["application"] == "tray"  # type: ignore[index]


def test_upsert_leaves_out_personal_fields_not_given(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, json=OK_BODY)
    client.upsert_session(make_request(standard, external_url=None, exit_url=None))

    body = sent_body(http.calls[0])
    assert body["student"] == {
        "external_id": "lti:0d3e5a7c9b1f2e4d6c8a0b2d4f6e8a1c",
        "name": "Aigerim Sadykova",
    }
    assert "group" not in body
    assert "external_url" not in body["assignment"]  # type: ignore[operator]
    assert "exit_url" not in body["assignment"]["settings"]  # type: ignore[index]


def test_upsert_never_puts_the_key_in_the_url(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, json=OK_BODY, match=[matchers.query_string_matcher("")])
    client.upsert_session(make_request(standard))
    assert KEY not in (http.calls[0].request.url or "")


def test_upsert_parses_token_report_and_session_urls_and_keeps_raw(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, json=OK_BODY)
    result = client.upsert_session(make_request(standard))

    assert result.token == "tok-123"
    assert result.session_id == "123456"
    assert result.report_url == "https://app.trustexam.test/assignments/1/students/2"
    assert result.session_url == "https://app.trustexam.test/session/abc"
    assert result.raw == OK_BODY


def test_upsert_reads_report_url_inside_external_session(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(
        SESSION_URL,
        json={"external_session": {"token": "t", "report_url": "https://app.trustexam.test/r/9"}},
    )
    result = client.upsert_session(make_request(standard))
    assert result.report_url == "https://app.trustexam.test/r/9"
    assert result.session_url is None
    assert result.session_id is None


@pytest.mark.parametrize(
    "body",
    [
        {"report_url": "https://app.trustexam.test/r/9"},
        {"external_session": {"id": 5}},
        {"external_session": {"token": ""}},
        {"entity": {"external_session": {"token": "t"}}},
    ],
    ids=["no-session", "no-token", "empty-token", "wrapped"],
)
def test_upsert_without_token_is_rejected(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile, body: object
) -> None:
    http.post(SESSION_URL, json=body)
    with pytest.raises(ProviderRejectedError, match="token"):
        client.upsert_session(make_request(standard))


def test_upsert_non_json_answer_is_rejected(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(ProviderRejectedError, match="not a JSON object"):
        client.upsert_session(make_request(standard))


def test_upsert_retries_after_500_then_succeeds(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile, sleeps: Sleeps
) -> None:
    http.post(SESSION_URL, status=500, json={"message": "Server Error"})
    http.post(SESSION_URL, json=OK_BODY)

    assert client.upsert_session(make_request(standard)).token == "tok-123"
    assert len(http.calls) == 2
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= client.backoff_base_s  # full jitter under the first ceiling


def test_upsert_retries_after_connection_error_then_succeeds(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile, sleeps: Sleeps
) -> None:
    http.post(SESSION_URL, body=requests.ConnectionError("refused"))
    http.post(SESSION_URL, json=OK_BODY)

    assert client.upsert_session(make_request(standard)).token == "tok-123"
    assert len(http.calls) == 2
    assert len(sleeps) == 1


def test_upsert_retries_after_read_timeout(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, body=requests.ReadTimeout("slow"))
    http.post(SESSION_URL, json=OK_BODY)
    assert client.upsert_session(make_request(standard)).token == "tok-123"


def test_upsert_honours_retry_after_seconds_on_429(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile, sleeps: Sleeps
) -> None:
    http.post(SESSION_URL, status=429, headers={"Retry-After": "7"}, json={"message": "slow"})
    http.post(SESSION_URL, status=429, headers={"Retry-After": "3"}, json={"message": "slow"})
    http.post(SESSION_URL, json=OK_BODY)

    client.upsert_session(make_request(standard))
    assert sleeps == [7.0, 3.0]


def test_retry_after_is_capped(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile, sleeps: Sleeps
) -> None:
    http.post(SESSION_URL, status=503, headers={"Retry-After": "86400"})
    http.post(SESSION_URL, json=OK_BODY)
    client.upsert_session(make_request(standard))
    assert sleeps == [client.retry_after_max_s]


def test_backoff_grows_exponentially_with_full_jitter(
    http: responses.RequestsMock, standard: Profile, sleeps: Sleeps
) -> None:
    client = ProctoringClient(API, KEY, max_retries=4, sleep=sleeps, backoff_base_s=1.0)
    for _ in range(4):
        http.post(SESSION_URL, status=502)
    http.post(SESSION_URL, json=OK_BODY)

    client.upsert_session(make_request(standard))
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= 2**attempt


def test_upsert_gives_up_with_retryable_error_after_last_try(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile, sleeps: Sleeps
) -> None:
    for _ in range(3):
        http.post(SESSION_URL, status=429, headers={"Retry-After": "2"}, json={})

    with pytest.raises(ProviderUnavailableError) as info:
        client.upsert_session(make_request(standard))
    assert info.value.retryable is True
    assert info.value.status == 429
    assert info.value.retry_after_s == 2.0
    assert len(http.calls) == 3
    assert sleeps == [2.0, 2.0]


def test_upsert_gives_up_after_repeated_connection_errors(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    for _ in range(3):
        http.post(SESSION_URL, body=requests.ConnectionError(f"refused {KEY}"))

    with pytest.raises(ProviderUnavailableError) as info:
        client.upsert_session(make_request(standard))
    assert info.value.retry_after_s is None
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"message": "Bad request"}),
        (401, {"message": "Unauthenticated."}),
        (403, {"message": "Forbidden"}),
        (422, {"message": "The given data was invalid.", "errors": {"student.name": ["required"]}}),
    ],
)
def test_upsert_client_errors_are_rejected_without_retry(
    http: responses.RequestsMock,
    client: ProctoringClient,
    standard: Profile,
    sleeps: Sleeps,
    status: int,
    body: dict[str, object],
) -> None:
    http.post(SESSION_URL, status=status, json=body, headers={"X-Request-Id": "req-42"})

    with pytest.raises(ProviderRejectedError) as info:
        client.upsert_session(make_request(standard))
    assert info.value.status == status
    assert info.value.request_id == "req-42"
    assert info.value.retryable is False
    assert str(body["message"]) in str(info.value)
    assert len(http.calls) == 1
    assert sleeps == []


def test_rejection_message_never_echoes_the_key(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, status=401, json={"message": f"bad key {KEY}"})
    with pytest.raises(ProviderRejectedError) as info:
        client.upsert_session(make_request(standard))
    assert KEY not in str(info.value)


def test_upsert_logs_no_secret(
    http: responses.RequestsMock,
    client: ProctoringClient,
    standard: Profile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG", logger="lti_proctor")
    http.post(SESSION_URL, status=500)
    http.post(SESSION_URL, json=OK_BODY)
    client.upsert_session(make_request(standard))
    assert caplog.records
    assert KEY not in caplog.text
    assert SECRET not in caplog.text
    assert "tok-123" not in caplog.text


def test_every_request_has_connect_and_read_timeouts(
    http: responses.RequestsMock, client: ProctoringClient, standard: Profile
) -> None:
    http.post(SESSION_URL, json=OK_BODY)
    http.get(f"{REPORTS}/actions/reports/ai/1", status=404)
    client.upsert_session(make_request(standard))
    client.fetch_report(1)
    assert [c.request.req_kwargs["timeout"] for c in http.calls] == [(1.0, 2.0), (1.0, 2.0)]


REPORT = {
    "attempt_id": 884211,
    "overall_risk_score": 28,
    "risk_level": "low",
    "credibility": 72,
    "summary": "Short head turns and background noise.",
    "violations": [
        {"type": "noise_detect", "count": 3, "severity": "low"},
        {"type": "head_rotated", "count": 2, "severity": "medium"},
    ],
    "timeline": [
        {"at": "2026-03-02T08:40:51Z", "offset_sec": 2437, "action_type": "focus_down"},
        {
            "at": "2026-03-02T08:14:03Z",
            "offset_sec": 829,
            "action_type": "head_rotated",
            "is_warning": 1,
            "description": "Head turned",
        },
    ],
    "recommendations": ["Review minute 13-15 of the screen recording."],
}


def test_fetch_report_uses_report_key_in_header_and_parses(
    http: responses.RequestsMock, client: ProctoringClient
) -> None:
    http.get(
        f"{REPORTS}/actions/reports/ai/884211",
        json=REPORT,
        match=[
            matchers.header_matcher({"X-Authorization": REPORT_KEY}),
            matchers.query_string_matcher(""),
        ],
    )
    report = client.fetch_report("884211")

    assert report is not None
    assert (report.risk_score, report.risk_source, report.risk_level) == (
        28.0,
        "overall_risk_score",
        "low",
    )
    assert [(v.type, v.count) for v in report.violations] == [
        ("noise_detect", 3),
        ("head_rotated", 2),
    ]
    assert report.violation_count == 5
    assert [e.action_type for e in report.timeline] == ["head_rotated", "focus_down"]
    assert report.timeline[0].is_warning and not report.timeline[1].is_warning
    assert report.recommendations == ("Review minute 13-15 of the screen recording.",)
    assert report.raw == REPORT


@pytest.mark.parametrize("not_ready", [404, 202])
def test_fetch_report_not_ready_then_ready(
    http: responses.RequestsMock, client: ProctoringClient, not_ready: int, sleeps: Sleeps
) -> None:
    url = f"{REPORTS}/actions/reports/ai/7"
    http.get(url, status=not_ready, json={"message": "not ready"})
    http.get(url, json={"credibility": 90, "violations": []})

    assert client.fetch_report(7) is None
    report = client.fetch_report(7)
    assert report is not None
    assert (report.risk_score, report.risk_source) == (10.0, "credibility")
    assert sleeps == []


@pytest.mark.parametrize(
    ("body", "risk", "source", "violations"),
    [
        ({}, None, "none", ()),
        ({"overall_risk_score": "35.5"}, 35.5, "overall_risk_score", ()),
        ({"overall_risk_score": 140}, 100.0, "overall_risk_score", ()),
        ({"credibility": 100, "violations": "many"}, 0.0, "credibility", ()),
        (
            {"violations": [{"action_type": "focus_down"}, "junk", {"count": 2}]},
            None,
            "none",
            (("focus_down", 1),),
        ),
        (
            {"timeline": [{"type": "head_empty", "is_warning": True}, {"type": "opened"}]},
            None,
            "none",
            (("head_empty", 1),),
        ),
        ({"entity": {"overall_risk_score": 12}}, 12.0, "overall_risk_score", ()),
    ],
    ids=[
        "empty",
        "numeric-string",
        "clamped",
        "credibility",
        "mixed-items",
        "from-timeline",
        "envelope",
    ],
)
def test_fetch_report_parses_variants_defensively(
    http: responses.RequestsMock,
    client: ProctoringClient,
    body: dict[str, object],
    risk: float | None,
    source: str,
    violations: tuple[tuple[str, int], ...],
) -> None:
    http.get(f"{REPORTS}/actions/reports/ai/1", json=body)
    report = client.fetch_report(1)
    assert report is not None
    assert (report.risk_score, report.risk_source) == (risk, source)
    assert tuple((v.type, v.count) for v in report.violations) == violations


def test_fetch_report_retries_5xx_and_rejects_other_4xx(
    http: responses.RequestsMock, client: ProctoringClient, sleeps: Sleeps
) -> None:
    url = f"{REPORTS}/actions/reports/ai/3"
    http.get(url, status=503)
    http.get(url, status=403, json={"message": "Forbidden"})
    with pytest.raises(ProviderRejectedError) as info:
        client.fetch_report(3)
    assert info.value.status == 403
    assert len(sleeps) == 1


def test_fetch_report_escapes_the_attempt_id(
    http: responses.RequestsMock, client: ProctoringClient
) -> None:
    http.get(f"{REPORTS}/actions/reports/ai/a%2F..%2Fb", status=404)
    assert client.fetch_report("a/../b") is None


def test_query_auth_mode_sends_report_key_as_api_token_only(
    http: responses.RequestsMock, standard: Profile
) -> None:
    client = from_config(
        {
            "TRUSTEXAM_API_BASE": API,
            "TRUSTEXAM_API_KEY": KEY,
            "TRUSTEXAM_REPORT_BASE": REPORTS,
            "TRUSTEXAM_REPORT_API_KEY": REPORT_KEY,
            "TRUSTEXAM_AUTH_MODE": "query",
            "PROCTOR_TIMEOUT_S": 4,
        }
    )
    http.get(
        f"{REPORTS}/actions/reports/ai/1",
        json={},
        match=[matchers.query_param_matcher({"api_token": REPORT_KEY})],
    )
    http.post(SESSION_URL, json=OK_BODY, match=[matchers.header_matcher({"X-Authorization": KEY})])

    assert client.fetch_report(1) is not None
    assert "X-Authorization" not in http.calls[0].request.headers
    client.upsert_session(make_request(standard))
    assert KEY not in (http.calls[1].request.url or "")


def test_from_config_reads_settings_and_defaults_report_key(http: responses.RequestsMock) -> None:
    client = from_config(
        {
            "TRUSTEXAM_API_BASE": API + "/",
            "TRUSTEXAM_API_KEY": KEY,
            "TRUSTEXAM_REPORT_BASE": REPORTS,
            "TRUSTEXAM_REPORT_API_KEY": None,
            "TRUSTEXAM_AUTH_MODE": "header",
            "PROCTOR_TIMEOUT_S": 4,
        }
    )
    assert client.api_base == API
    assert client.timeout == (4.0, 4.0)
    http.get(
        f"{REPORTS}/actions/reports/ai/1",
        status=404,
        match=[matchers.header_matcher({"X-Authorization": KEY})],
    )
    assert client.fetch_report(1) is None
    assert KEY not in repr(client)


@pytest.mark.parametrize(
    "config",
    [
        {"TRUSTEXAM_API_KEY": None},
        {"TRUSTEXAM_API_KEY": ""},
        {"TRUSTEXAM_API_KEY": KEY, "TRUSTEXAM_AUTH_MODE": "cookie"},
    ],
    ids=["no-key", "empty-key", "bad-auth-mode"],
)
def test_from_config_refuses_unusable_settings(config: dict[str, object]) -> None:
    with pytest.raises(ProviderRejectedError):
        from_config(config)


def _flask_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def test_each_app_builds_its_own_client_once() -> None:
    first = _flask_app(TRUSTEXAM_API_KEY=KEY, TRUSTEXAM_API_BASE=API)
    other = _flask_app(TRUSTEXAM_API_KEY=KEY, TRUSTEXAM_API_BASE="https://other.test/api")
    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = list(pool.map(lambda _: get_client(first), range(16)))
    assert len({id(c) for c in clients}) == 1
    assert clients[0].api_base == API
    assert get_client(other) is not clients[0]
    assert get_client(other).api_base == "https://other.test/api"


def test_app_client_with_unusable_settings_is_refused_each_time_and_not_kept() -> None:
    app = _flask_app(TRUSTEXAM_API_KEY="")
    for _ in range(2):
        with pytest.raises(ProviderRejectedError):
            get_client(app)
    app.config["TRUSTEXAM_API_KEY"] = KEY
    assert get_client(app).api_base == "https://api.trustexam.ai/api"


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert 25 <= (parse_retry_after(format_datetime(soon, usegmt=True)) or 0) <= 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_the_environments_proxy_and_ca_bundle_are_honoured_without_reading_them_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.campus.test:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/campus-ca.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    behind_proxy = ProctoringClient(API, KEY)
    assert behind_proxy._http.proxies.get("https") == "http://proxy.campus.test:3128"
    assert behind_proxy._http.verify == "/etc/ssl/campus-ca.pem"
    assert behind_proxy._http.trust_env is False  # read once, above; not again per request

    monkeypatch.setenv("NO_PROXY", "trustexam.test")
    direct = ProctoringClient(API, KEY)
    assert direct._http.proxies == {}
