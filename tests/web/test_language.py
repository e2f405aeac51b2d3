"""Pages in the launch's language (en, ru, kk), and the pages reached without a launch."""

from __future__ import annotations

import copy
import re

import pytest

from lti_proctor.lti.claims import LAUNCH_PRESENTATION
from tests.factories_attempts import EXAM_URL, PROCTOR_CONFIG, fake_service
from tests.launches import LaunchBuilder
from tests.results.world import ResultsWorld


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


@pytest.fixture
def lms(app, client, http):
    fake_service(http)
    return LaunchBuilder(app, client, http)


def with_locale(lms, locale):
    presentation = copy.deepcopy(lms.fixture["claims"][LAUNCH_PRESENTATION])
    presentation["locale"] = locale
    return {LAUNCH_PRESENTATION: presentation, "custom": {"exam_url": EXAM_URL}}


def html_lang(resp):
    return re.search(r'<html lang="([^"]+)"', resp.get_data(as_text=True)).group(1)


@pytest.mark.parametrize(
    ("locale", "lang", "sdk", "text"),
    [
        ("ru-RU", "ru", "ru", "Начать экзамен"),
        ("kk-KZ", "kk", "kz", "Емтиханды бастау"),
        ("kz", "kk", "kz", "Емтиханды бастау"),
        ("en", "en", "en", "Start exam"),
        ("fr-FR", "en", "en", "Start exam"),
    ],
)
def test_exam_page_speaks_the_launch_locale(lms, locale, lang, sdk, text):
    resp = lms.launch(overrides=with_locale(lms, locale))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert html_lang(resp) == lang
    assert f'data-sdk-language="{sdk}"' in page
    assert text in page
    if lang != "en":
        assert "Start exam" not in page and "Finish exam" not in page


def test_exam_page_names_every_state_and_the_finish_question(lms):
    page = lms.launch(overrides=with_locale(lms, "en")).get_data(as_text=True)
    for state in ("resumed", "stale", "in_progress", "waiting", "finished", "error"):
        assert f'data-state-panel="{state}"' in page
    assert "Your exam is in progress. Press <strong>Continue exam</strong>" in page
    assert "This exam continues in another tab or window" in page
    assert "Have you submitted your answers in the quiz? Finishing ends proctoring" in page
    assert "This is your last attempt" in page  # max_attempts defaults to 1


def test_instructor_view_speaks_the_launch_locale_on_every_page(app, client, http):
    world = ResultsWorld(app, client, http)
    attempt = world.student_attempt()
    presentation = copy.deepcopy(world.launcher.fixture["claims"][LAUNCH_PRESENTATION])
    presentation["locale"] = "ru"
    resp = world.launch(role="instructor", **{LAUNCH_PRESENTATION: presentation})
    page = resp.get_data(as_text=True)
    assert html_lang(resp) == "ru"
    assert "Результаты прокторинга" in page and "На проверке" in page and "Не начата" in page
    detail = re.search(rf'href="([^"]+/attempts/{attempt.id})"', page).group(1)
    again = client.get(detail.replace("&amp;", "&"))
    assert again.status_code == 200
    assert html_lang(again) == "ru" and "Состояние" in again.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/lti/launch"])
@pytest.mark.parametrize(
    ("accept", "lang", "text"),
    [("en", "en", "opened from the course"), ("kk-KZ,ru;q=0.8", "kk", "курстан ашылады")],
)
def test_pages_without_a_launch_explain_the_tool(client, path, accept, lang, text):
    resp = client.get(path, headers={"Accept-Language": accept})
    assert resp.status_code == 200
    assert html_lang(resp) == lang
    assert text in resp.get_data(as_text=True)
    assert "/lti/login" in resp.get_data(as_text=True)
