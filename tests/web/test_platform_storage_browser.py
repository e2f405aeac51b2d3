"""Launches in Chromium where the tool's cookies are third-party (blocked): LTI Platform Storage
through the sandbox Canvas's frames, and reloading the exam page after the start."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template

from lti_proctor.demo import start_demo
from lti_proctor.lti.context import LaunchContext
from lti_proctor.sandbox.lms import create_sandbox_lms
from lti_proctor.sandbox.lms_platform import get_sandbox_lms
from lti_proctor.web import lti as web_lti
from tests.constants import TOOL_URL
from tests.factories import register_described
from tests.launches import table_counts
from tests.live import live_server

# Chromium blocks third-party cookies; the LMS (localhost) and the tool (127.0.0.1) are two sites.
BLOCK_THIRD_PARTY = ["--no-sandbox", "--test-third-party-cookie-phaseout"]


def _chromium() -> tuple[Any, str]:
    playwright = pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium installed for the browser test")
    return playwright, path


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[LaunchContext]:
    """Validated launches show their context page (the LTI layer alone is under test)."""
    seen: list[LaunchContext] = []

    def spy(ctx: LaunchContext) -> Any:
        seen.append(ctx)
        return render_template("lti/launched.html", ctx=ctx)

    monkeypatch.setattr(web_lti, "_respond_to_launch", spy)
    return seen


@pytest.fixture
def cross_site(app: Flask) -> Iterator[tuple[str, str]]:
    """The tool on http://127.0.0.1 and a sandbox Canvas on http://localhost, registered."""
    built: dict[str, Flask] = {}
    with live_server(app) as tool_url:
        app.config.update(BASE_URL=tool_url, DEV_INSECURE_COOKIES=True)

        def build(base_url: str) -> Flask:
            built["lms"] = create_sandbox_lms(
                base_url=base_url.replace("127.0.0.1", "localhost"),
                tool_url=tool_url,
                family="canvas",
            )
            return built["lms"]

        with live_server(build) as lms_url:
            with app.app_context():
                register_described(get_sandbox_lms(built["lms"]).describe())
            yield tool_url, lms_url.replace("127.0.0.1", "localhost")
        app.config["BASE_URL"] = TOOL_URL


def test_framed_launch_without_third_party_cookies_uses_platform_storage(
    app: Flask, cross_site: tuple[str, str], contexts: list[LaunchContext]
) -> None:
    playwright, chromium = _chromium()
    tool_url, lms_url = cross_site
    launches: list[dict[str, str]] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BLOCK_THIRD_PARTY)
        page = browser.new_page()
        page.on(
            "request",
            lambda r: (
                launches.append({"cookie": r.headers.get("cookie", ""), "body": r.post_data})
                if r.url == tool_url + "/lti/launch"
                else None
            ),
        )
        page.goto(lms_url + "/course/final/student")
        tool = page.frame_locator("#tool_content")
        tool.locator("td.roles").wait_for(timeout=30_000)  # a loaded machine is slow
        shown = tool.locator("section.launched").inner_text()
        browser.close()

    assert "Sam Student" in shown
    assert len(contexts) == 1 and contexts[0].user_name == "Sam Student"
    # The platform's form post came back without the state cookie; the tool's own page then read
    # the state and nonce from the LMS's storage and posted the launch again.
    assert len(launches) == 2
    assert all("lti1p3-" not in launch["cookie"] for launch in launches)
    assert "lti_storage_state=state-" in (launches[1]["body"] or "")


def test_framed_launch_where_neither_cookies_nor_storage_work_offers_a_new_window(
    app: Flask, cross_site: tuple[str, str], contexts: list[LaunchContext]
) -> None:
    playwright, chromium = _chromium()
    tool_url, lms_url = cross_site
    before = table_counts(app)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BLOCK_THIRD_PARTY)
        context = browser.new_context()
        # The LMS page without its storage frame: nothing answers the storage messages.
        context.route(
            "**/post_message_forwarding", lambda route: route.fulfill(status=404, body="gone")
        )
        page = context.new_page()
        page.goto(lms_url + "/course/final/student")
        tool = page.frame_locator("#tool_content")
        link = tool.locator("#lti-new-window")
        link.wait_for(state="visible", timeout=15_000)
        href = link.get_attribute("href") or ""
        target = link.get_attribute("target")
        browser.close()

    # A new window is first-party to the tool: the login starts again there, with cookies.
    assert href.startswith(tool_url + "/lti/login?") and target == "_blank"
    assert "login_hint=" in href and "lti_storage_target" not in href
    assert contexts == [] and table_counts(app) == before


def test_reloading_the_exam_page_after_the_start_resumes_the_attempt(tmp_path: Path) -> None:
    playwright, chromium = _chromium()
    fake_devices = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    instance = {"INSTANCE_PATH": str(tmp_path / "instance")}
    with (
        start_demo(port_base=0, family="canvas", overrides=instance) as demo,
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", *fake_devices])
        page = browser.new_page()
        page.goto(demo.urls.lms + "/")
        page.click("text=Launch as student")
        tool = page.frame_locator("#tool_content")
        tool.locator("#exam-start").wait_for(state="visible", timeout=15_000)
        tool.locator("#exam-start").click()
        tool.locator("#exam-app[data-exam-state='in_progress']").wait_for(timeout=15_000)
        frame = page.frame(name="tool_content")
        assert frame is not None
        assert "/exam/open/" in frame.url  # the spent launch POST is no longer in the history

        frame.evaluate("location.reload()")  # F5 inside the course page
        tool.locator("#exam-app").wait_for(timeout=15_000)
        tool.locator("#exam-resume").wait_for(state="visible", timeout=15_000)
        reloaded = tool.locator("body").inner_text()
        browser.close()

    assert "launch.state_missing" not in reloaded and "launch.nonce_replayed" not in reloaded
