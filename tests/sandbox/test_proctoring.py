"""The sandbox proctoring service, driven over real HTTP by the tool's real ProctoringClient."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

from lti_proctor.proctoring.client import ProctoringClient, from_config
from lti_proctor.proctoring.errors import ProviderRejectedError
from lti_proctor.proctoring.profiles import load_profiles
from lti_proctor.proctoring.types import Profile, SessionRequest
from lti_proctor.proctoring.webhooks import parse_event, verify_webhook
from lti_proctor.sandbox.proctoring import create_sandbox_proctoring, get_state

KEY = "sandbox-key-123"
SECRET = "attempt-secret-abc"
PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "configs" / "profiles")


@dataclass
class Server:
    """A live WSGI server on 127.0.0.1 with a random port."""

    app: Flask
    url: str
    server: BaseWSGIServer


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], Server]]:
    servers: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(app: Flask) -> Server:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return Server(app, f"http://127.0.0.1:{server.server_port}", server)

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


@dataclass
class Receiver:
    """The tool's webhook endpoints, as far as the sandbox can tell: it records every delivery."""

    server: Server
    calls: list[dict[str, Any]] = field(default_factory=list)
    status: list[int] = field(default_factory=lambda: [200])

    def url(self, event: str) -> str:
        return f"{self.server.url}/webhooks/trustexam/{event}"


@pytest.fixture
def receiver(serve: Callable[[Flask], Server]) -> Receiver:
    app = Flask("receiver")
    calls: list[dict[str, Any]] = []
    status = [200]

    @app.post("/webhooks/trustexam/<event>")
    def hook(event: str) -> Response:
        calls.append(
            {
                "event": event,
                "args": dict(request.args),
                "headers": dict(request.headers),
                "content_type": request.content_type,
                "raw": request.get_data(),
            }
        )
        return Response('{"ok":true}', status=status[0], mimetype="application/json")

    @app.get("/exam")
    def exam() -> str:
        return EXAM_PAGE

    return Receiver(serve(app), calls, status)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(serve: Callable[[Flask], Server], clock: Clock) -> Server:
    app = create_sandbox_proctoring(base_url="", api_key=KEY, report_delay_s=30, clock=clock)
    live = serve(app)
    app.config["SANDBOX_PROCTORING_BASE_URL"] = live.url  # known only once the port is bound
    return live


@pytest.fixture
def client(sandbox: Server) -> ProctoringClient:
    """The real client, configured only by base URL and key."""
    return from_config(
        {
            "TRUSTEXAM_API_BASE": f"{sandbox.url}/api",
            "TRUSTEXAM_API_KEY": KEY,
            "TRUSTEXAM_REPORT_BASE": f"{sandbox.url}/report-api/v1",
            "PROCTOR_TIMEOUT_S": 5,
        }
    )


def session_request(receiver: Receiver, attempt: str = "att-1", **overrides: Any) -> SessionRequest:
    values: dict[str, Any] = {
        "assignment_external_id": "lti:assignment",
        "assignment_name": "Midterm",
        "student_external_id": "lti:student",
        "student_name": "Aigerim Sadykova",
        "attempt_id": attempt,
        "profile": PROFILES["standard"],
        "webhook_start_url": receiver.url("start"),
        "webhook_finish_url": receiver.url("finish"),
        "webhook_secret": SECRET,
    }
    values.update(overrides)
    return SessionRequest(**values)


def sdk(sandbox: Server, token: str, step: str, body: Any = None) -> requests.Response:
    """Call the sandbox SDK endpoints as the browser SDK does."""
    url = f"{sandbox.url}/sdk/session" + (f"/{step}" if step else "")
    headers = {"X-Proctoring-Token": token}
    if step:
        return requests.post(url, json=body, headers=headers, timeout=10)
    return requests.get(url, headers=headers, timeout=10)


# -- session upsert ------------------------------------------------------------------------------


def test_upsert_returns_token_report_and_session_urls(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    result = client.upsert_session(session_request(receiver))
    assert result.token
    assert result.session_id
    assert result.report_url == f"{sandbox.url}/report/session/{result.session_id}"
    assert result.session_url == f"{sandbox.url}/session/{result.session_id}"
    assert requests.get(result.report_url, timeout=5).status_code == 200


def test_upsert_is_idempotent_for_the_same_attempt(
    client: ProctoringClient, receiver: Receiver
) -> None:
    first = client.upsert_session(session_request(receiver))
    again = client.upsert_session(session_request(receiver, assignment_name="Renamed"))
    other = client.upsert_session(session_request(receiver, attempt="att-2"))
    assert (again.token, again.session_id) == (first.token, first.session_id)
    assert other.token != first.token


def test_upsert_after_finish_opens_a_new_session(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    first = client.upsert_session(session_request(receiver))
    sdk(sandbox, first.token, "start")
    sdk(sandbox, first.token, "finish")
    again = client.upsert_session(session_request(receiver))
    assert again.token != first.token
    assert sdk(sandbox, again.token, "").json()["status"] == "pending"


def test_upsert_with_bad_key_is_401(sandbox: Server, receiver: Receiver) -> None:
    bad = ProctoringClient(f"{sandbox.url}/api", "wrong-key")
    with pytest.raises(ProviderRejectedError) as info:
        bad.upsert_session(session_request(receiver))
    assert info.value.status == 401
    assert "Unauthenticated" in str(info.value)


def test_upsert_accepts_api_token_query(sandbox: Server, receiver: Receiver) -> None:
    from lti_proctor.proctoring.messages import build_session_body

    resp = requests.post(
        f"{sandbox.url}/api/external-session/assignment.json",
        params={"api_token": KEY},
        json=build_session_body(session_request(receiver)),
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.json()["external_session"]["token"]


def test_upsert_with_partial_settings_is_422(client: ProctoringClient, receiver: Receiver) -> None:
    partial = Profile(name="partial", proctoring_settings={"content_protect": 1})
    with pytest.raises(ProviderRejectedError) as info:
        client.upsert_session(session_request(receiver, profile=partial))
    assert info.value.status == 422
    assert "proctoring_settings" in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "field_name"),
    [
        (lambda b: b["student"].pop("name"), "student.name"),
        (lambda b: b["assignment"].pop("external_id"), "assignment.external_id"),
        (
            lambda b: b["assignment"]["settings"].pop("proctoring_settings"),
            "assignment.settings.proctoring_settings",
        ),
        (
            lambda b: b["assignment"]["settings"]["webhook"].update(start_url="ftp://x"),
            "assignment.settings.webhook.start_url",
        ),
    ],
    ids=["student-name", "assignment-id", "settings", "webhook-url"],
)
def test_upsert_missing_fields_get_laravel_style_422(
    sandbox: Server, receiver: Receiver, mutate: Callable[[dict[str, Any]], Any], field_name: str
) -> None:
    from lti_proctor.proctoring.messages import build_session_body

    body = build_session_body(session_request(receiver))
    mutate(body)
    resp = requests.post(
        f"{sandbox.url}/api/external-session/assignment.json",
        headers={"X-Authorization": KEY},
        json=body,
        timeout=5,
    )
    assert resp.status_code == 422
    assert resp.json()["message"] == "The given data was invalid."
    assert field_name in resp.json()["errors"]


# -- SDK endpoints and webhooks ------------------------------------------------------------------


def test_start_delivers_the_start_webhook_with_our_secret(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    token = client.upsert_session(session_request(receiver)).token
    resp = sdk(sandbox, token, "start")

    assert resp.status_code == 200
    assert resp.json()["status"] == "active" and resp.json()["webhook_delivered"] is True
    (call,) = receiver.calls
    assert call["event"] == "start"
    assert call["args"] == {"sig": SECRET, "attempt_id": "att-1"}
    assert call["headers"]["X-Tool-Webhook-Secret"] == SECRET
    assert call["content_type"] == "application/json"
    verify_webhook(call["headers"], call["args"], expected=SECRET)
    event = parse_event("start", call["raw"], call["content_type"])
    assert event.attempt_ref == "att-1"
    assert event.status == "active"
    assert event.service_attempt_id and event.service_attempt_id.isdigit()
    assert event.started_at is not None
    body = json.loads(call["raw"])
    assert body["assignment"]["external_id"] == "lti:assignment"
    assert body["student"]["external_id"] == "lti:student"
    assert body["session_data"] == {"external_id": "att-1"}
    assert body["attempt_id"] == "att-1"  # webhook.post merged into the body


def test_finish_delivers_finish_webhook_and_repeats_send_nothing(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    token = client.upsert_session(session_request(receiver)).token
    sdk(sandbox, token, "start")
    sdk(sandbox, token, "start")
    resp = sdk(sandbox, token, "finish")
    sdk(sandbox, token, "finish")

    assert resp.json()["finished"] is True
    assert [c["event"] for c in receiver.calls] == ["start", "finish"]
    finish = receiver.calls[1]
    verify_webhook(finish["headers"], finish["args"], expected=SECRET)
    event = parse_event("finish", finish["raw"], finish["content_type"])
    assert (event.attempt_ref, event.status) == ("att-1", "closed")
    assert event.finished_at is not None
    assert event.report_url and event.report_url.startswith(sandbox.url)
    assert json.loads(finish["raw"])["attempt"]["credibility"] == 100


def test_webhook_query_is_appended_to_an_existing_query(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    req = session_request(receiver, webhook_start_url=receiver.url("start") + "?tenant=a")
    token = client.upsert_session(req).token
    sdk(sandbox, token, "start")
    assert receiver.calls[0]["args"] == {"tenant": "a", "sig": SECRET, "attempt_id": "att-1"}


@pytest.mark.parametrize("failure", ["http-500", "unreachable"])
def test_failed_webhook_does_not_break_the_sdk_call(
    client: ProctoringClient,
    sandbox: Server,
    receiver: Receiver,
    failure: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if failure == "http-500":
        receiver.status[0] = 500
        req = session_request(receiver)
    else:
        req = session_request(receiver, webhook_start_url="http://127.0.0.1:9/hooks/start")
    token = client.upsert_session(req).token
    resp = sdk(sandbox, token, "start")

    assert resp.status_code == 200
    assert resp.json()["status"] == "active"
    assert resp.json()["webhook_delivered"] is False
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("lti_proctor")]
    assert any("sandbox webhook start" in line for line in ours)
    assert not any(SECRET in line or token in line for line in ours)
    assert get_state(sandbox.app).by_token[token].deliveries[0]["event"] == "start"


def test_sdk_refuses_out_of_order_steps(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    token = client.upsert_session(session_request(receiver)).token
    assert sdk(sandbox, token, "finish").status_code == 409
    assert sdk(sandbox, token, "action", {"action_type": "focus_down"}).status_code == 409
    sdk(sandbox, token, "start")
    sdk(sandbox, token, "finish")
    assert sdk(sandbox, token, "start").status_code == 409
    assert sdk(sandbox, "no-such-token", "start").status_code == 404
    assert [c["event"] for c in receiver.calls] == ["start", "finish"]


def test_sdk_session_tells_content_protect_and_attempt_limits(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    token = client.upsert_session(session_request(receiver)).token
    info = sdk(sandbox, token, "").json()
    assert info["settings"]["content_protect"] == 1
    assert (info["status"], info["finished"], info["can_start_new_attempt"]) == (
        "pending",
        False,
        True,
    )


# -- AI report -----------------------------------------------------------------------------------


def test_report_not_ready_until_finished_and_delay_passed(
    client: ProctoringClient, sandbox: Server, receiver: Receiver, clock: Clock
) -> None:
    token = client.upsert_session(session_request(receiver)).token
    started = sdk(sandbox, token, "start").json()
    attempt_id = started["attempt"]["id"]
    sdk(sandbox, token, "action", {"action_type": "head_rotated", "is_warning": 1})
    sdk(sandbox, token, "action", {"action_type": "focus_down", "is_warning": 1})
    sdk(sandbox, token, "action", {"action_type": "focus_restored", "is_warning": 0})

    assert client.fetch_report(attempt_id) is None
    sdk(sandbox, token, "finish")
    assert client.fetch_report(attempt_id) is None
    clock.now += 31
    report = client.fetch_report(attempt_id)

    assert report is not None
    assert report.risk_source == "overall_risk_score"
    assert report.risk_score == 24.0
    assert {(v.type, v.count) for v in report.violations} == {
        ("head_rotated", 1),
        ("focus_down", 1),
    }
    assert report.timeline[0].action_type == "started"
    assert report.raw["attempt_id"] == attempt_id


def test_report_requires_the_report_key(sandbox: Server) -> None:
    resp = requests.get(f"{sandbox.url}/report-api/v1/actions/reports/ai/1001", timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"message": "Unauthenticated."}


def test_unknown_attempt_report_is_not_ready(client: ProctoringClient) -> None:
    assert client.fetch_report(999999) is None
    assert client.fetch_report("abc") is None


# -- CORS and the SDK script ---------------------------------------------------------------------


def test_sdk_endpoints_allow_the_tool_origin(
    serve: Callable[[Flask], Server], receiver: Receiver
) -> None:
    app = create_sandbox_proctoring(
        base_url="http://sandbox.test", api_key=KEY, allowed_origins=["https://tool.example.com"]
    )
    live = serve(app)
    ok = requests.options(
        f"{live.url}/sdk/session/start",
        headers={
            "Origin": "https://tool.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-proctoring-token",
        },
        timeout=5,
    )
    other = requests.options(
        f"{live.url}/sdk/session/start", headers={"Origin": "https://evil.test"}, timeout=5
    )
    assert ok.headers["Access-Control-Allow-Origin"] == "https://tool.example.com"
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    assert "X-Proctoring-Token" in ok.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers


def test_sdk_script_is_served_with_the_base_url(sandbox: Server) -> None:
    resp = requests.get(f"{sandbox.url}/extension/app.js", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/javascript")
    assert f'const BASE = "{sandbox.url}";' in resp.text
    assert "__SANDBOX_BASE_URL__" not in resp.text


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js not installed")
def test_sdk_script_defines_the_contract_surface(sandbox: Server, tmp_path: Path) -> None:
    script = tmp_path / "app.js"
    script.write_text(requests.get(f"{sandbox.url}/extension/app.js", timeout=5).text)
    probe = (
        "global.window = global; require(process.argv[1]);"
        "const P = window.Proctoring;"
        "console.log(JSON.stringify(['initialize','start','finish','isFinished',"
        "'isCanStartNewAttempt'].map(n => typeof P[n])));"
        "P.isFinished().then(v => console.log(JSON.stringify(v)));"
    )
    out = subprocess.run(
        ["node", "-e", probe, str(script)], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert out == ['["function","function","function","function","function"]', "false"]


# -- the SDK in a real browser -------------------------------------------------------------------

EXAM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>exam</title></head>
<body><div class="wrapper"><div class="question-wrapper"><p id="q">What is 2 + 2?</p></div></div>
<script>
window.events = [];
function load(src) {
  return new Promise((ok, fail) => {
    const s = document.createElement('script'); s.src = src; s.onload = ok; s.onerror = fail;
    document.head.appendChild(s);
  });
}
window.boot = async (sdkUrl, token) => {
  await load(sdkUrl);
  const log = (name) => () => window.events.push(name);
  await Proctoring.initialize('.wrapper', {
    language: 'en', token: token, protector: {match: '.question-wrapper', textColor: '#b91c1c'},
    onMounted: log('mounted'), onConfigured: log('configured'), onStarted: log('started'),
    onFinished: log('finished'), onAction: (a) => window.events.push('action:' + a.action_type),
    onError: (e) => window.events.push('error:' + e.message),
  });
};
</script></body></html>"""


def _browser() -> Any:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed for the browser test")
    return playwright, chromium


def test_sdk_in_browser_mounts_protects_starts_and_finishes(
    client: ProctoringClient, sandbox: Server, receiver: Receiver
) -> None:
    playwright, chromium = _browser()
    token = client.upsert_session(session_request(receiver)).token
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{receiver.server.url}/exam")
            sdk_url = f"{sandbox.url}/extension/app.js"
            page.evaluate("([u, t]) => window.boot(u, t)", [sdk_url, token])

            assert page.locator(".sandbox-proctoring-widget").is_visible()
            protected = page.locator(".question-wrapper")
            assert protected.get_attribute("data-content-protect") == "on"
            assert page.locator(".question-wrapper .sandbox-content-protect-badge").is_visible()
            assert page.evaluate("getComputedStyle(document.querySelector('#q')).userSelect") == (
                "none"
            )

            page.evaluate("Proctoring.start()")
            page.select_option(".sp-violation", "head_rotated")
            page.click(".sp-violate")
            page.wait_for_function("window.events.includes('action:head_rotated')")
            page.evaluate("Proctoring.finish()")
            finished = page.evaluate("Proctoring.isFinished()")
            events = page.evaluate("window.events")
        finally:
            browser.close()

    assert finished is True
    assert events[:3] == ["mounted", "configured", "started"]
    assert events[-1] == "finished"
    assert [c["event"] for c in receiver.calls] == ["start", "finish"]
    session = get_state(sandbox.app).by_token[token]
    assert [a["action_type"] for a in session.actions if a["is_warning"]] == ["head_rotated"]
