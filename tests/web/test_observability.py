"""Request ids, one log line per event (text or JSON), and the X-Forwarded-* trust setting."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from lti_proctor import create_app, logs
from lti_proctor.extensions import db


class LogLines:
    """What the tool's log handler writes, read back line by line."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    def readouterr(self) -> SimpleNamespace:
        text, _ = self.buffer.getvalue(), self.buffer.seek(0)
        self.buffer.truncate()
        return SimpleNamespace(err=text)


@pytest.fixture
def logged(app: Flask, monkeypatch: pytest.MonkeyPatch) -> LogLines:
    """Point the handler the app installed at a buffer for this test."""
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logs._ToolHandler)]
    buffer = io.StringIO()
    monkeypatch.setattr(handler, "stream", buffer)
    return LogLines(buffer)


@pytest.fixture
def json_logs(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["LOG_FORMAT"] = "json"
    return app_config


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_response_carries_the_proxys_request_id_and_so_does_the_json_log_line(
    json_logs: dict[str, Any], client: FlaskClient, logged: LogLines
) -> None:
    logged.readouterr()
    resp = client.get("/healthz", headers={"X-Request-ID": "nginx-4f2a9c1e"})
    assert resp.headers["X-Request-ID"] == "nginx-4f2a9c1e"
    lines = json_lines(logged.readouterr().err)
    (line,) = [x for x in lines if x["logger"] == "lti_proctor.access"]
    assert line["request_id"] == "nginx-4f2a9c1e"
    assert line["message"] == "GET /healthz 200"
    assert line["level"] == "INFO"
    assert isinstance(line["duration_ms"], float)


@pytest.mark.parametrize(
    "sent", ["short", "has space in it", "x" * 300, "<script>alert(1)</script>", "ünïcode-id-1"]
)
def test_an_insane_request_id_is_replaced_by_a_fresh_one(client: FlaskClient, sent: str) -> None:
    resp = client.get("/healthz", headers={"X-Request-ID": sent})
    rid = resp.headers["X-Request-ID"]
    assert rid != sent
    assert len(rid) == 32
    assert int(rid, 16) >= 0


def test_each_request_without_an_id_gets_its_own(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first != second


def test_refused_launch_page_log_line_and_header_share_the_request_id(
    json_logs: dict[str, Any],
    client: FlaskClient,
    lti_platform: Any,
    logged: LogLines,
) -> None:
    logged.readouterr()
    resp = lti_platform.launch(overrides={"deployment_id": "nope"})
    assert resp.status_code == 400
    rid = resp.headers["X-Request-ID"]
    assert f'<code class="request-id">{rid}</code>' in resp.get_data(as_text=True)
    refusals = [x for x in json_lines(logged.readouterr().err) if "launch refused" in x["message"]]
    assert [x["request_id"] for x in refusals] == [rid]
    assert "launch.deployment_unknown" in refusals[0]["message"]


def test_access_line_carries_no_page_token_and_no_webhook_secret(
    json_logs: dict[str, Any], client: FlaskClient, logged: LogLines
) -> None:
    logged.readouterr()
    client.get("/exam/open/PAGE-TOKEN-SECRET")
    client.post("/webhooks/trustexam/start?sig=WEBHOOK-SECRET", data=b"{}")
    err = logged.readouterr().err
    assert "PAGE-TOKEN-SECRET" not in err
    assert "WEBHOOK-SECRET" not in err
    messages = [x["message"] for x in json_lines(err) if x["logger"] == "lti_proctor.access"]
    assert "GET /exam/open/[redacted] 401" in messages


def test_text_logs_keep_a_traceback_on_the_event_line(app: Flask, logged: LogLines) -> None:
    logged.readouterr()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("lti_proctor.test").exception("it failed")
    lines = [x for x in logged.readouterr().err.splitlines() if "lti_proctor.test" in x]
    assert len(lines) == 1
    assert "ERROR lti_proctor.test [-] it failed" in lines[0]
    assert "ValueError: boom" in lines[0]


def test_an_unknown_log_format_stops_start_up_with_one_line(app_config: dict[str, Any]) -> None:
    from lti_proctor.config import ConfigError

    app_config["LOG_FORMAT"] = "xml"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json"):
        create_app(app_config)


@pytest.mark.parametrize(("hops", "scheme"), [(0, "http"), (1, "https")])
def test_forwarded_proto_is_trusted_only_with_proxy_hops(
    app_config: dict[str, Any], hops: int, scheme: str
) -> None:
    app_config.update(PROXY_FIX_HOPS=hops, AUTO_SETUP=False)  # this app writes nothing
    app = create_app(app_config)
    app.add_url_rule("/_scheme", "scheme", lambda: request.scheme)
    resp = app.test_client().get(
        "/_scheme", headers={"X-Forwarded-Proto": "https"}, base_url="http://tool.example.com"
    )
    assert resp.get_data(as_text=True) == scheme
    with app.app_context():
        db.engine.dispose()
