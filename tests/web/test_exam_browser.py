"""The exam's pages in a real browser (Chromium): the wrapper page's script with a stand-in SDK at
the SDK's URL, and the starting page of a launch through the demo's sandboxes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests
from flask import Flask

from lti_proctor.attempts.models import Attempt
from lti_proctor.demo import start_demo
from lti_proctor.extensions import db
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.sandbox.proctoring import get_state
from lti_proctor.timeutil import utcnow
from lti_proctor.web import exam, exam_page
from tests.factories import make_platform
from tests.factories_attempts import ACCESS_CODE, EXAM_URL, PROCTOR_CONFIG, SDK_URL, make_attempt
from tests.live import live_server

# The SDK surface of trustexam-api.md §4.8: isFinished async, isCanStartNewAttempt sync.
FAKE_SDK = """
window.Proctoring = (function () {
  var opts = null, finished = false;
  return {
    initialize: function (selector, options) {
      opts = options;
      window.__sdk = { selector: selector, language: options.language, token: options.token,
                       protector: options.protector, calls: [] };
      setTimeout(function () { options.onMounted(); setTimeout(options.onConfigured, 20); }, 20);
    },
    start: function () {
      window.__sdk.calls.push('start');
      return new Promise(function (resolve) {
        setTimeout(function () { resolve(); opts.onStarted(); }, 20);
      });
    },
    finish: function () {
      window.__sdk.calls.push('finish');
      finished = true;
      return Promise.resolve().then(function () { opts.onFinished(); });
    },
    isFinished: function () { return Promise.resolve(finished); },
    isCanStartNewAttempt: function () { return true; }
  };
}());
"""


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


def _chromium():
    playwright = pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium installed for the browser test")
    return playwright, path


def test_page_mounts_sdk_and_reveals_exam_only_after_start_webhook(app):
    playwright, chromium = _chromium()
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        attempt.token_refreshed_at = utcnow()  # launched just now: the exam's window is open
        db.session.commit()
        attempt_id, secret = attempt.id, attempt.webhook_secret
    with app.test_request_context():
        token = exam_page.sign("open", {"a": attempt_id, "l": "ru", "r": None})
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        csp_errors = []
        page.on(
            "console",
            lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.route(SDK_URL, lambda r: r.fulfill(body=FAKE_SDK, content_type="text/javascript"))
        page.route(EXAM_URL, lambda r: r.fulfill(body="<p>Quiz</p>", content_type="text/html"))
        page.goto(f"{base}/exam/open/{token}")

        page.wait_for_selector("#exam-start", state="visible")
        sdk = page.evaluate("window.__sdk")
        assert sdk["selector"] == ".wrapper"
        assert (sdk["language"], sdk["token"]) == ("ru", "sdk-token-1")
        assert sdk["protector"]["match"] == ".question-wrapper"

        page.click("#exam-start")
        page.wait_for_selector("#exam-app[data-exam-state='waiting']")
        assert page.locator(".question-wrapper iframe").count() == 0
        assert ACCESS_CODE not in page.content()

        hook = requests.post(
            f"{base}/webhooks/trustexam/start?sig={secret}",
            json={"event": "start", "status": "active", "attempt_id": attempt_id},
            headers={"X-Tool-Webhook-Secret": secret},
            timeout=5,
        )
        assert hook.status_code == 200
        page.wait_for_selector("#exam-app[data-exam-state='in_progress']", timeout=10_000)
        assert page.inner_text("#exam-access-code") == ACCESS_CODE
        assert page.get_attribute(".question-wrapper iframe", "src") == EXAM_URL

        page.click("#exam-submit")
        page.click("#exam-confirm-yes")
        page.wait_for_selector("#exam-app[data-exam-state='finished']")
        assert page.locator(".question-wrapper iframe").count() == 0
        assert page.evaluate("window.__sdk.calls") == ["start", "finish"]
        browser.close()
    assert csp_errors == []
    with app.app_context():
        stored = db.session.get(Attempt, attempt_id)
        assert stored.submitted_at is not None
        assert stored.state == "started"  # the finish webhook, not the page, finishes it


@pytest.mark.parametrize(
    ("allow", "offered"),
    [("", True), ("camera; microphone", True), ("camera; microphone; display-capture", False)],
)
def test_frame_without_device_permissions_offers_a_new_window(app, allow, offered):
    playwright, chromium = _chromium()
    # The LMS is another origin (another loopback port) that frames the page, as in real life.
    course = Flask("lms")
    course.add_url_rule("/course", view_func=lambda: course.config["PAGE"])
    with live_server(app) as base, live_server(course) as lms, playwright.sync_playwright() as p:
        with app.app_context():
            attempt = make_attempt(make_platform(issuer=lms), get_profiles(app)["standard"])
            attempt.token_refreshed_at = utcnow()  # launched just now: the exam's window is open
            db.session.commit()
            attempt_id = attempt.id
        with app.test_request_context():
            token = exam_page.sign("open", {"a": attempt_id, "l": "en", "r": None})
        course.config["PAGE"] = (
            f'<iframe id="lti" allow="{allow}" src="{base}/exam/open/{token}"></iframe>'
        )
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.route(SDK_URL, lambda r: r.fulfill(body=FAKE_SDK, content_type="text/javascript"))
        page.goto(f"{lms}/course")
        frame = page.frame_locator("#lti")
        frame.locator("#exam-start").wait_for(state="visible")
        assert frame.locator("#exam-open-window").is_visible() is offered
        browser.close()


def _started_page(app, base, p, chromium, language):
    """A browser page showing a started attempt's quiz, in language; returns (browser, page)."""
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        attempt.token_refreshed_at = utcnow()  # launched just now: the exam's window is open
        db.session.commit()
        attempt_id, secret = attempt.id, attempt.webhook_secret
    with app.test_request_context():
        token = exam_page.sign("open", {"a": attempt_id, "l": language, "r": None, "m": 1})
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    context = browser.new_context()
    context.route(SDK_URL, lambda r: r.fulfill(body=FAKE_SDK, content_type="text/javascript"))
    context.route(EXAM_URL, lambda r: r.fulfill(body="<p>Quiz</p>", content_type="text/html"))
    page = context.new_page()
    page.goto(f"{base}/exam/open/{token}")
    page.click("#exam-start")
    requests.post(
        f"{base}/webhooks/trustexam/start?sig={secret}",
        json={"event": "start", "status": "active", "attempt_id": attempt_id},
        headers={"X-Tool-Webhook-Secret": secret},
        timeout=5,
    )
    page.wait_for_selector("#exam-app[data-exam-state='in_progress']", timeout=10_000)
    return browser, page


@pytest.mark.parametrize(
    ("language", "lang", "finish", "sdk_language"),
    [("ru", "ru", "Завершить экзамен", "ru"), ("kz", "kk", "Емтиханды аяқтау", "kz")],
)
def test_launch_language_shows_the_page_in_it(app, language, lang, finish, sdk_language):
    playwright, chromium = _chromium()
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser, page = _started_page(app, base, p, chromium, language)
        assert page.get_attribute("html", "lang") == lang
        assert page.inner_text("#exam-submit") == finish
        assert page.evaluate("window.__sdk.language") == sdk_language
        browser.close()


def test_finish_asks_first_and_no_keeps_the_quiz(app):
    playwright, chromium = _chromium()
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser, page = _started_page(app, base, p, chromium, "en")
        page.click("#exam-submit")
        dialog = page.locator("#exam-confirm")
        assert dialog.is_visible()
        assert "Have you submitted your answers in the quiz?" in dialog.inner_text()
        assert "you cannot come back" in dialog.inner_text()  # max_attempts 1
        page.click("#exam-confirm-no")
        assert not dialog.is_visible()
        assert page.get_attribute("#exam-app", "data-exam-state") == "in_progress"
        assert page.locator(".question-wrapper iframe").count() == 1
        assert page.evaluate("window.__sdk.calls") == ["start"]
        browser.close()


LEAVING = """() => {
  const event = new Event('beforeunload', { cancelable: true });
  window.dispatchEvent(event);
  return event.defaultPrevented;
}"""


def test_leaving_during_the_exam_warns_first_and_not_after_finishing(app):
    playwright, chromium = _chromium()
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser, page = _started_page(app, base, p, chromium, "en")
        assert page.evaluate(LEAVING) is True  # the browser asks "Leave site?"
        page.click("#exam-submit")
        page.click("#exam-confirm-yes")
        page.wait_for_selector("#exam-app[data-exam-state='finished']")
        assert page.evaluate(LEAVING) is False
        browser.close()


def test_a_second_tab_makes_the_first_offer_to_take_over(app):
    playwright, chromium = _chromium()
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser, first = _started_page(app, base, p, chromium, "en")
        second = first.context.new_page()
        second.goto(first.url)
        first.wait_for_selector("#exam-app[data-exam-state='stale']", timeout=5_000)
        assert "continues in another tab" in first.inner_text(".exam-status")
        assert first.locator("#exam-takeover").is_visible()
        assert first.locator(".question-wrapper iframe").count() == 0
        browser.close()


SLOW_SERVICE_S = 6  # long enough to watch the counter tick; well under PROCTOR_TIMEOUT_S
SLOW_AFTER_S = 3  # instead of the page's 20 s: this test does not wait that long


def _say_slow_after(seconds: int):
    """A route handler: the launch as the tool answers it, but "taking longer than usual" after
    seconds (the page's script reads the threshold from data-slow-after-s)."""

    def handle(route):
        answer = route.fetch()
        body = answer.text()
        assert f'data-slow-after-s="{exam.SLOW_AFTER_S}"' in body
        route.fulfill(
            response=answer,
            body=body.replace(
                f'data-slow-after-s="{exam.SLOW_AFTER_S}"', f'data-slow-after-s="{seconds}"'
            ),
        )

    return handle


def test_a_slow_service_shows_the_starting_page_ticking_until_the_exam_page(tmp_path: Path):
    playwright, chromium = _chromium()
    fake_devices = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    instance = {"INSTANCE_PATH": str(tmp_path / "instance")}
    with start_demo(port_base=0, overrides=instance) as demo, playwright.sync_playwright() as p:
        get_state(demo.proctoring_app).upsert_delay_s = SLOW_SERVICE_S
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", *fake_devices])
        page = browser.new_page()
        page.route(demo.urls.tool + "/lti/launch", _say_slow_after(SLOW_AFTER_S))
        csp_errors = []
        page.on(
            "console",
            lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(demo.urls.lms + "/")
        page.click("text=Launch as student")
        tool = page.frame_locator("#tool_content")
        elapsed = tool.locator("#exam-starting-elapsed")
        counting = re.compile(r"^Connecting to the proctoring service… \d+ s$")

        # The launch answered before the service did: the spinner and a counter that ticks
        # while the start form's POST waits for the slow service.
        playwright.expect(elapsed).to_have_text(counting, timeout=15_000)
        assert tool.locator(".exam-starting .spinner").is_visible()
        first = elapsed.inner_text()
        playwright.expect(elapsed).not_to_have_text(first, timeout=5_000)
        playwright.expect(elapsed).to_have_text(counting)
        playwright.expect(tool.locator("#exam-starting-slow")).to_be_visible(timeout=10_000)
        assert "taking longer than usual" in tool.locator("#exam-starting-slow").inner_text()

        tool.locator("#exam-start").wait_for(state="visible", timeout=30_000)
        assert tool.locator("#exam-starting").count() == 0
        (session,) = get_state(demo.proctoring_app).by_token.values()
        assert session.status == "pending"
        browser.close()
    assert csp_errors == []
