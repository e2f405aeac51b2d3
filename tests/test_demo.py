"""`lti-proctor demo`: the three servers on loopback, registered with each other, and a student's
launch from the sandbox LMS reaching the tool's exam wrapper over real HTTP."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskCliRunner

from lti_proctor.__main__ import demo_command
from lti_proctor.demo import (
    ACCESS_CODE,
    DemoError,
    RunningDemo,
    demo_banner,
    register_sandbox_platform,
    start_demo,
)
from lti_proctor.extensions import db
from lti_proctor.lti.platforms import list_platforms
from lti_proctor.sandbox.lms import create_sandbox_lms
from lti_proctor.sandbox.lms_data import RESOURCE_LINK
from lti_proctor.sandbox.lms_platform import get_sandbox_lms
from lti_proctor.sandbox.proctoring import get_state
from tests.live import Browser

CUSTOM = "https://purl.imsglobal.org/spec/lti/claim/custom"


@pytest.fixture
def instance(tmp_path: Path) -> dict[str, Any]:
    return {"INSTANCE_PATH": str(tmp_path / "instance")}


@pytest.fixture(params=["moodle", "canvas"])
def demo(request: pytest.FixtureRequest, instance: dict[str, Any]) -> Iterator[RunningDemo]:
    with start_demo(port_base=0, family=request.param, overrides=instance) as running:
        yield running


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _free_base() -> int:
    """A port with the two after it free too (checked by binding them)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + 2 > 65535:
            continue
        try:
            for port in (base, base + 1, base + 2):
                with socket.socket() as check:
                    check.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no three consecutive free ports")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_student_launch_from_the_lms_index_reaches_the_exam_wrapper(demo: RunningDemo) -> None:
    browser = Browser()
    index = browser.open(demo.urls.lms + "/")

    page = browser.open(index.link("Launch as student"))

    assert page.status == 200
    # The launch answered with the starting page at once; its form started the attempt.
    assert page.url == demo.urls.tool + "/exam/start"
    hops = [p.url.split("?")[0] for p in browser.history]
    (starting,) = [p for p in browser.history if p.url == demo.urls.tool + "/lti/launch"]
    assert "Starting your exam…" in starting.text and 'id="exam-starting-form"' in starting.text
    # Posted, so only the redirect target shows; Canvas frames the tool with lti_storage_target,
    # so its login is the Platform Storage page, which goes on to the LMS by itself.
    logins = [p for p in browser.history if p.url.split("?")[0] == demo.urls.tool + "/lti/login"]
    assert all('id="lti-continue"' in p.text and "data-auto-submit" in p.text for p in logins)
    assert any(url.startswith(demo.urls.lms + "/") and "auth" in url for url in hops)
    if 'id="exam-app"' in page.text:  # the exam wrapper: a session exists on the sandbox service
        (session,) = get_state(demo.proctoring_app).by_token.values()
        assert f'data-sdk-token="{session.token}"' in page.text
        assert ACCESS_CODE not in page.text and "/quiz/1" not in page.text
    else:  # the plain launch page, before the exam wrapper is wired in
        assert "the launch was accepted" in page.text


def test_tool_is_configured_for_the_sandboxes(demo: RunningDemo) -> None:
    cfg = demo.tool_app.config

    assert cfg["BASE_URL"] == demo.urls.tool
    assert cfg["SANDBOX_PROCTORING"] is True and cfg["OUTBOX_EMBEDDED_WORKER"] is True
    assert cfg["DEV_INSECURE_COOKIES"] is True
    assert cfg["TRUSTEXAM_API_BASE"] == demo.urls.proctoring + "/api"
    assert cfg["TRUSTEXAM_SDK_URL"] == demo.urls.proctoring + "/extension/app.js"
    assert cfg["TRUSTEXAM_REPORT_BASE"] == demo.urls.proctoring + "/report-api/v1"
    assert cfg["TRUSTEXAM_API_KEY"].startswith("sandbox-")
    assert get_state(demo.proctoring_app).api_key == cfg["TRUSTEXAM_API_KEY"]
    instance = Path(demo.tool_app.instance_path)
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'lti_proctor.sqlite3'}"
    sdk = requests.get(cfg["TRUSTEXAM_SDK_URL"], timeout=5)
    assert sdk.status_code == 200 and "Proctoring" in sdk.text


def test_sandbox_lms_is_registered_in_the_tool(demo: RunningDemo) -> None:
    lms = get_sandbox_lms(demo.lms_app)

    with demo.tool_app.app_context():
        (platform,) = list_platforms()
        registered = (platform.issuer, platform.client_id, platform.key_set_url)
        deployments = [d.deployment_id for d in platform.deployments]

    assert registered == (lms.site.issuer, lms.site.client_id, lms.key_set_url)
    assert deployments == [lms.site.deployment_id]
    assert lms.tool_login_url == demo.urls.tool + "/lti/login"


def test_exam_link_carries_only_the_exam_reference(demo: RunningDemo) -> None:
    from lti_proctor.sandbox.lms_platform import PendingLaunch

    lms = get_sandbox_lms(demo.lms_app)

    claims = lms.claims(PendingLaunch("student", "final", RESOURCE_LINK, 1), nonce="n", iat=1)

    # The quiz URL, access code and profile are kept in the tool (issue 8), not in the launch.
    assert list(claims[CUSTOM]) == ["exam"] and claims[CUSTOM]["exam"].startswith("ex_")
    assert ACCESS_CODE not in json.dumps(claims)
    assert {u.is_instructor for u in lms.users.values()} == {True, False}


def test_quiz_is_framable_by_the_tool_and_takes_answers(demo: RunningDemo) -> None:
    quiz = requests.get(demo.urls.lms + "/quiz/1", timeout=5)
    done = requests.post(
        demo.urls.lms + "/quiz/1",
        data={"q1": "Learning Tools Interoperability", "q2": "A SAML assertion"},
        timeout=5,
    )

    assert quiz.status_code == 200 and '<button type="submit">' in quiz.text
    assert quiz.headers["Content-Security-Policy"] == f"frame-ancestors 'self' {demo.urls.tool}"
    assert done.status_code == 200 and "1 of 2 correct" in done.text


def test_course_page_frames_the_tool_with_device_permissions(demo: RunningDemo) -> None:
    page = requests.get(demo.urls.lms + "/course/final/student", timeout=5).text

    allow = re.search(r'<iframe[^>]* allow="([^"]*)"', page)
    assert allow is not None
    features = dict(part.split(None, 1) for part in allow.group(1).split(";") if part.strip())
    # The frame starts on the LMS's launch URL and is posted on to the tool: a bare "camera"
    # would mean the src origin (the LMS) only, so each feature must name the tool or "*".
    for feature in ("camera", "microphone", "display-capture", "fullscreen"):
        assert features[feature].strip() in ("*", demo.urls.tool)


def test_banner_says_what_to_open_and_click(demo: RunningDemo) -> None:
    banner = demo_banner(demo)

    assert f"Open  {demo.urls.lms}/" in banner
    assert '"Launch as student"' in banner and ACCESS_CODE in banner
    assert f"{demo.urls.lms}/gradebook" in banner and "Ctrl-C" in banner
    assert demo.tool_app.config["TRUSTEXAM_API_KEY"] not in banner


def test_stop_releases_the_ports(instance: dict[str, Any]) -> None:
    running = start_demo(port_base=0, overrides=instance)
    ports = [_port(u) for u in (running.urls.tool, running.urls.lms, running.urls.proctoring)]
    assert all(_listening(port) for port in ports)

    running.stop()

    assert not any(_listening(port) for port in ports)


def test_taken_port_is_refused_with_one_line(taken_port: int, instance: dict[str, Any]) -> None:
    with pytest.raises(DemoError) as refused:
        start_demo(port_base=taken_port, overrides=instance)

    message = str(refused.value)
    assert "\n" not in message
    assert f"port {taken_port}" in message and "already in use" in message


def _listener_with_free_port_below() -> socket.socket:
    """A listening socket whose port minus one is free (the demo's tool port must be)."""
    for _ in range(50):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", sock.getsockname()[1] - 1))
            except OSError:
                sock.close()
                continue
        sock.listen()
        return sock
    raise RuntimeError("no pair of free loopback ports found")


def test_taken_lms_port_releases_the_tool_port(instance: dict[str, Any]) -> None:
    with _listener_with_free_port_below() as other:
        lms_port = other.getsockname()[1]
        with pytest.raises(DemoError, match=f"port {lms_port} .*sandbox LMS"):
            start_demo(port_base=lms_port - 1, overrides=instance)
    assert not _listening(lms_port - 1)


def test_demo_command_refuses_taken_ports(runner: FlaskCliRunner, taken_port: int) -> None:
    result = runner.invoke(demo_command, args=["--port-base", str(taken_port)])

    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: port ") and "already in use" in line


def test_demo_refuses_hosts_off_loopback(instance: dict[str, Any]) -> None:
    with pytest.raises(DemoError, match="loopback"):
        start_demo(host="0.0.0.0", port_base=0, overrides=instance)


def test_demo_refuses_production_and_releases_its_ports(instance: dict[str, Any]) -> None:
    base = _free_base()

    with pytest.raises(DemoError, match="PRODUCTION") as refused:
        start_demo(port_base=base, overrides={**instance, "PRODUCTION": True})

    assert "\n" not in str(refused.value)
    assert not any(_listening(port) for port in (base, base + 1, base + 2))


def test_restart_on_the_same_ports_keeps_one_registration(instance: dict[str, Any]) -> None:
    base = _free_base()
    with start_demo(port_base=base, overrides=instance) as first:
        first_registration = first.registration

    with start_demo(port_base=base, overrides=instance) as again:
        with again.tool_app.app_context():
            count = len(list_platforms())
        page = Browser().open(again.urls.lms + "/course/final/student")

    assert (first_registration, again.registration) == ("registered", "already registered")
    assert count == 1
    assert page.url == again.urls.tool + "/exam/start" and page.status == 200


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_registering_the_sandbox_again_is_idempotent(app: Flask, family: str) -> None:
    def described(lms_port: int) -> dict[str, str | None]:
        lms = create_sandbox_lms(
            base_url=f"http://127.0.0.1:{lms_port}", tool_url="http://127.0.0.1:5000", family=family
        )
        return get_sandbox_lms(lms).describe()

    with app.app_context():
        outcomes = [register_sandbox_platform(described(5001))]
        db.session.commit()
        outcomes.append(register_sandbox_platform(described(5001)))
        outcomes.append(register_sandbox_platform(described(6001)))
        db.session.commit()
        platforms = [(p.issuer, p.auth_login_url) for p in list_platforms()]

    assert outcomes[:2] == ["registered", "already registered"]
    if family == "canvas":  # same issuer and client id on another port: replaced
        assert outcomes[2] == "re-registered"
        assert platforms == [
            ("https://canvas.instructure.com", "http://127.0.0.1:6001/api/lti/authorize_redirect")
        ]
    else:  # Moodle's issuer is its URL: another port is another platform
        assert outcomes[2] == "registered"
        assert [issuer for issuer, _ in platforms] == [
            "http://127.0.0.1:5001",
            "http://127.0.0.1:6001",
        ]


def test_registering_over_a_real_platform_is_refused(app: Flask) -> None:
    from lti_proctor.lti.platforms import add_platform

    lms = get_sandbox_lms(
        create_sandbox_lms(base_url="http://127.0.0.1:5001", tool_url="http://x", family="canvas")
    )
    with app.app_context():
        add_platform(
            issuer="https://canvas.instructure.com",
            client_id=lms.site.client_id,
            deployment_ids=["1:abc"],
            auth_login_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
            auth_token_url="https://school.instructure.com/login/oauth2/token",
            key_set_url="https://sso.canvaslms.com/api/lti/security/jwks",
            name="school.instructure.com",
        )
        with pytest.raises(DemoError, match=re.escape("registered as 'school.instructure.com'")):
            register_sandbox_platform(lms.describe())


def _chromium() -> tuple[Any, str]:
    playwright = pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium installed for the browser test")
    return playwright, path


def test_newcomer_takes_the_exam_in_a_browser(instance: dict[str, Any]) -> None:
    playwright, chromium = _chromium()
    fake_devices = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with (
        start_demo(port_base=0, overrides=instance) as demo,
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", *fake_devices])
        page = browser.new_page()
        page.goto(demo.urls.lms + "/")
        page.click("text=Launch as student")
        tool = page.frame_locator("#tool_content")
        tool.locator("#exam-start").wait_for(state="visible", timeout=15_000)
        tool.locator(".wrapper .sandbox-proctoring-widget").wait_for(timeout=15_000)
        protected = tool.locator(".question-wrapper[data-content-protect='on']")
        # Content Protect is on the (still hidden) question area before anything is revealed.
        protected.locator(".sandbox-content-protect-badge").wait_for(
            state="attached", timeout=15_000
        )
        assert tool.locator(".question-wrapper iframe").count() == 0
        assert tool.locator("#exam-access-code").count() == 0 or (
            tool.locator("#exam-access-code").inner_text() == ""
        )

        tool.locator("#exam-start").click()
        tool.locator("#exam-app[data-exam-state='in_progress']").wait_for(timeout=15_000)
        assert tool.locator("#exam-access-code").inner_text() == ACCESS_CODE
        assert protected.locator(".sandbox-content-protect-badge").is_visible()
        quiz = tool.frame_locator(".question-wrapper iframe")
        quiz.locator("text=Learning Tools Interoperability").click()
        quiz.locator("text=OIDC login initiation").click()
        quiz.locator("button[type=submit]").click()
        assert "2 of 2 correct" in quiz.locator("#quiz-submitted").inner_text(timeout=10_000)
        tool.locator("#exam-submit").click()
        tool.locator("#exam-confirm-yes").click()  # "Have you submitted your answers...?"
        tool.locator("#exam-app[data-exam-state='finished']").wait_for(timeout=15_000)

        (session,) = get_state(demo.proctoring_app).by_token.values()
        assert session.status == "closed"
        assert [d["event"] for d in session.deliveries] == ["start", "finish"]
        assert all(d.get("status") in (200, 204) for d in session.deliveries)
        gradebook = browser.new_page()
        gradebook.goto(demo.urls.lms + "/gradebook")
        final = gradebook.locator(
            "td.score .grading", has_text=re.compile("FullyGraded|PendingManual")
        )
        final.wait_for(timeout=20_000)  # the page reloads itself every few seconds
        assert "Proctoring: Final exam (proctored)" in gradebook.content()
        assert gradebook.locator("td.score .activity").first.inner_text() == "Completed"

        page.goto(demo.urls.lms + "/")
        page.click("text=Launch as instructor")
        results = page.frame_locator("#tool_content")
        row = results.locator("table.attempts tbody tr").first
        row.wait_for(timeout=15_000)
        assert "Sam Student" in row.inner_text()
        assert row.locator("td").nth(2).inner_text() == "Report ready"
        report = row.locator("a[target=_blank]")
        assert report.get_attribute("href", timeout=5_000).startswith(demo.urls.proctoring)
        browser.close()
