"""Deep linking in Chromium through the demo: the instructor adds an exam from the sandbox LMS's
course page (the tool's form, its auto-posted answer), then a student opens the new link."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lti_proctor.demo import ACCESS_CODE, start_demo
from lti_proctor.sandbox.lms_platform import get_sandbox_lms
from lti_proctor.sandbox.lms_quiz import quiz_url


def _chromium() -> tuple[Any, str]:
    playwright = pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium installed for the browser test")
    return playwright, path


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_instructor_adds_an_exam_by_deep_linking_and_a_student_opens_it(
    tmp_path: Path, family: str
) -> None:
    playwright, chromium = _chromium()
    instance = {"INSTANCE_PATH": str(tmp_path / "instance")}
    with (
        start_demo(port_base=0, family=family, overrides=instance) as demo,
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(demo.urls.lms + "/")
        page.click("text=Add a proctored exam")
        page.locator("input[name=title]").wait_for(timeout=15_000)
        page.fill("input[name=title]", "Midterm in Chromium")
        page.fill("input[name=exam_url]", quiz_url(demo.urls.lms))
        page.fill("input[name=access_code]", ACCESS_CODE)
        page.click("button:has-text('Add the exam')")
        # The tool's answer posts itself back; the LMS shows its course page with the new link.
        page.wait_for_url(demo.urls.lms + "/", timeout=15_000)
        course = page.locator("body").inner_text()
        lms = get_sandbox_lms(demo.lms_app)
        link = next(k for k, v in lms.links.items() if v.title == "Midterm in Chromium")

        student = browser.new_page()
        student.goto(f"{demo.urls.lms}/course/{link}/student")
        tool = student.frame_locator("#tool_content")
        # The page first shows "Connecting…" until the SDK has mounted; then the Start button.
        tool.locator("#exam-start").wait_for(state="visible", timeout=30_000)
        exam = tool.locator("body").inner_text()
        browser.close()

    assert "Midterm in Chromium" in course
    assert "Start exam" in exam  # the new link's exam, ready behind proctoring
