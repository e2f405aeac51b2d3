"""Screenshots of the tool's pages in English, Russian and Kazakh, at desktop width and 375 px.

Runs the demo on free ports, opens the root page, the launch URL, the student's exam page and
the instructor view through the sandbox LMS with each locale, and writes PNGs to
screenshots/ (git-ignored). Needs Debian's chromium and the dev extra (Playwright):

    .venv/bin/python scripts/screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from lti_proctor.demo import start_demo

WIDTHS = {"desktop": 1280, "phone": 375}
LOCALES = {"en": "en", "ru": "ru-RU", "kk": "kk-KZ"}


def main() -> None:
    """Write one PNG per page, language and width; print where they went."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    instance = {"INSTANCE_PATH": tempfile.mkdtemp(prefix="lti-proctor-shots-")}
    with start_demo(port_base=0, overrides=instance) as demo, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for lang, locale in LOCALES.items():
            for label, width in WIDTHS.items():
                context = browser.new_context(
                    viewport={"width": width, "height": 900}, locale=locale
                )
                page = context.new_page()
                for name, url in (("root", "/"), ("launch-get", "/lti/launch")):
                    page.goto(demo.urls.tool + url)
                    page.screenshot(path=out / f"{name}-{lang}-{label}.png", full_page=True)
                page.goto(demo.urls.lms + "/")
                page.screenshot(path=out / f"lms-{lang}-{label}.png", full_page=True)
                context.close()
        browser.close()
    print(f"screenshots in {out}/")


if __name__ == "__main__":
    main()
