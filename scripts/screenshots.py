"""Screenshots of the tool's pages in English, Russian and Kazakh, at desktop width and 375 px.

Runs the demo on free ports (a fresh one per language, so each student starts a new attempt) and
drives Chromium through what a person sees: the root page and a direct GET of the launch URL,
the sandbox course page, the starting page a launch answers with (the sandbox service slowed
down for it), the student's exam page before and after the start, the finish
question, and the instructor's attempt list and attempt detail. The sandbox LMS sends the
browser's language as the launch locale, as Moodle and Canvas send the user's. PNGs go to
screenshots/ (git-ignored) as <page>-<lang>-<desktop|phone>.png. Needs Debian's chromium and the
dev extra (Playwright); it never downloads a browser:

    .venv/bin/python scripts/screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from lti_proctor.demo import RunningDemo, start_demo
from lti_proctor.sandbox.proctoring import get_state

WIDTHS = {"desktop": 1280, "phone": 375}
HEIGHT = 900
LOCALES = {"en": "en-US", "ru": "ru-RU", "kk": "kk-KZ"}
WAIT_MS = 15_000
SLOW_SERVICE_S = 5.0  # the starting page stays up this long: time to photograph it ticking


class Shooter:
    """Writes each page at every width: <name>-<lang>-<label>.png in out."""

    def __init__(self, out: Path, lang: str) -> None:
        self.out, self.lang, self.written = out, lang, 0

    def shoot(self, page: Page, name: str) -> None:
        """The page as it is now, at each width (the page is left at desktop width)."""
        for label, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": HEIGHT})
            page.wait_for_timeout(150)  # let the layout settle after the resize
            page.screenshot(path=self.out / f"{name}-{self.lang}-{label}.png", full_page=True)
            self.written += 1
        page.set_viewport_size({"width": WIDTHS["desktop"], "height": HEIGHT})


def student_pages(demo: RunningDemo, page: Page, shots: Shooter) -> None:
    """The starting page (the service slowed down so that it stays up), then the exam page:
    ready to start, in progress with the quiz, the finish question, finished."""
    service = get_state(demo.proctoring_app)
    service.upsert_delay_s = SLOW_SERVICE_S
    # In the course page's frame: Playwright waits out a top-level page's pending navigation
    # before it looks at it, and the course page's load event waits for the start's answer.
    page.goto(demo.urls.lms + "/course/final/student", wait_until="commit")
    page.frame_locator("#tool_content").locator("#exam-starting").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1_200)  # the counter has ticked past its first second
    shots.shoot(page, "exam-starting")
    service.upsert_delay_s = 0
    page.goto(demo.urls.lms + "/launch/final/student")  # the same attempt, resumed, full size
    page.wait_for_selector("#exam-start", state="visible", timeout=WAIT_MS)
    shots.shoot(page, "exam-before-start")
    page.click("#exam-start")
    page.wait_for_selector("#exam-app[data-exam-state='in_progress']", timeout=WAIT_MS)
    page.wait_for_selector(".question-wrapper iframe", timeout=WAIT_MS)
    shots.shoot(page, "exam-in-progress")
    page.click("#exam-submit")
    page.wait_for_selector("#exam-confirm[open]", timeout=WAIT_MS)
    shots.shoot(page, "exam-finish-question")
    page.click("#exam-confirm-yes")
    page.wait_for_selector("#exam-app[data-exam-state='finished']", timeout=WAIT_MS)
    shots.shoot(page, "exam-finished")


def instructor_pages(demo: RunningDemo, page: Page, shots: Shooter) -> None:
    """The attempt list and the first attempt's detail (its report, once the worker has it)."""
    page.wait_for_timeout(2_000)  # the embedded worker fetches the report right after the finish
    page.goto(demo.urls.lms + "/launch/final/instructor")
    page.wait_for_selector("table.attempts", timeout=WAIT_MS)
    shots.shoot(page, "instructor-list")
    page.click("table.attempts tbody tr a")
    page.wait_for_load_state()
    shots.shoot(page, "instructor-detail")


def one_language(browser: Browser, out: Path, lang: str) -> int:
    """Every page in one language, against a demo of its own; returns how many PNGs it wrote."""
    shots = Shooter(out, lang)
    instance = {"INSTANCE_PATH": tempfile.mkdtemp(prefix=f"lti-proctor-shots-{lang}-")}
    with start_demo(port_base=0, overrides=instance) as demo:
        context = browser.new_context(
            viewport={"width": WIDTHS["desktop"], "height": HEIGHT}, locale=LOCALES[lang]
        )
        page = context.new_page()
        for name, url in (
            ("root", demo.urls.tool + "/"),
            ("launch-get", demo.urls.tool + "/lti/launch"),
        ):
            page.goto(url)
            shots.shoot(page, name)
        page.goto(demo.urls.lms + "/")
        shots.shoot(page, "lms")
        student_pages(demo, page, shots)
        instructor_pages(demo, page, shots)
        context.close()
    return shots.written


def main() -> None:
    """Write one PNG per page, language and width; print where they went."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        written = sum(one_language(browser, out, lang) for lang in LOCALES)
        browser.close()
    print(f"{written} screenshots in {out}/")


if __name__ == "__main__":
    main()
