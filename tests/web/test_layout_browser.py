"""The pages a phone shows (375 px wide, Chromium): nothing sticks out past the screen's edge.

Checked by element geometry, not pixels: the document is no wider than the viewport, and every
visible element fits in it unless it sits inside its own horizontal scroller (a table that
scrolls inside its box is fine on a phone; a page that scrolls sideways is not).
"""

from __future__ import annotations

import pytest

from lti_proctor.extensions import db
from lti_proctor.lti.claims import LAUNCH_PRESENTATION
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.results import reports as reports_job
from lti_proctor.timeutil import utcnow
from lti_proctor.web import exam_page
from tests.factories import make_platform
from tests.factories_attempts import SDK_URL, make_attempt
from tests.live import live_server
from tests.results.world import RESULTS_CONFIG, Clock, ResultsWorld
from tests.web.test_exam_browser import FAKE_SDK, _chromium, _started_page
from tests.web.test_instructor import detail_url, list_url, reported_attempt

PHONE = {"width": 375, "height": 740}

# Elements past the viewport's edges that are not inside a horizontal scroller (overflow-x
# auto/scroll/hidden), plus the document's own width. Zero-size elements (a visually hidden
# table head) do not count.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) continue;
    if (box.left >= -0.5 && box.right <= width + 0.5) continue;
    let up = el.parentElement, scroller = false;
    for (; up && up !== document.body; up = up.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(up).overflowX)) {
        scroller = true;
        break;
      }
    }
    if (!scroller) {
      const name = `${el.tagName.toLowerCase()}.${el.className}`;
      out.push(`${name} ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
  }
  return { width: width, scrollWidth: document.documentElement.scrollWidth, outside: out };
}"""


def assert_fits_the_phone(page) -> None:
    found = page.evaluate(OVERFLOW)
    assert found["width"] == PHONE["width"]
    assert found["outside"] == []
    assert found["scrollWidth"] <= PHONE["width"]


@pytest.fixture
def app_config(app_config):
    app_config.update(RESULTS_CONFIG)
    return app_config


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(reports_job, "utcnow", clock)
    return clock


LONG_NAME = "Aigerim Nurlanovna Kenzhebekova-Abdrakhmanova"
LONG_EMAIL = "aigerim.nurlanovna.kenzhebekova-abdrakhmanova@students.example-university.kz"


@pytest.mark.parametrize("locale", ["en", "ru", "kk"])
def test_instructor_list_and_detail_fit_a_phone(app, client, http, clock, locale):
    playwright, chromium = _chromium()
    world = ResultsWorld(app, client, http)
    attempt = reported_attempt(world, clock, risk=75, name=LONG_NAME, email=LONG_EMAIL)
    reported_attempt(world, clock, sub="student-2", name="Lee Short", email="lee@example.edu")
    presentation = dict(world.launcher.fixture["claims"][LAUNCH_PRESENTATION], locale=locale)
    launch = world.launch(role="instructor", **{LAUNCH_PRESENTATION: presentation})
    pages = {"list": list_url(launch), "detail": detail_url(launch, attempt.id)}
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(viewport=PHONE).new_page()
        for name, path in pages.items():
            page.goto(base + path)
            assert page.get_attribute("html", "lang") == locale, name
            if name == "list":  # every attempt is on the screen, as a card of label/value lines
                assert page.locator("tr[data-attempt]").count() == 2
                assert page.locator("table.attempts thead").bounding_box()["width"] <= 1
            assert_fits_the_phone(page)
        browser.close()


@pytest.mark.parametrize("language", ["en", "ru", "kz"])
def test_exam_page_fits_a_phone_before_and_after_the_start(app, language):
    playwright, chromium = _chromium()
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser, page = _started_page(app, base, p, chromium, language)
        page.set_viewport_size(PHONE)
        assert page.locator(".question-wrapper iframe").is_visible()
        assert_fits_the_phone(page)  # the quiz is shown: in_progress
        page.click("#exam-submit")
        assert page.locator("#exam-confirm").is_visible()
        assert_fits_the_phone(page)  # the finish question
        browser.close()


def test_exam_page_fits_a_phone_before_the_start(app):
    playwright, chromium = _chromium()
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        attempt.token_refreshed_at = utcnow()  # launched just now: the exam's window is open
        db.session.commit()
        attempt_id = attempt.id
    with app.test_request_context():
        token = exam_page.sign("open", {"a": attempt_id, "l": "kz", "r": None, "m": 1})
    with live_server(app) as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport=PHONE)
        context.route(SDK_URL, lambda r: r.fulfill(body=FAKE_SDK, content_type="text/javascript"))
        page = context.new_page()
        page.goto(f"{base}/exam/open/{token}")
        page.wait_for_selector("#exam-start", state="visible")
        assert_fits_the_phone(page)
        browser.close()
