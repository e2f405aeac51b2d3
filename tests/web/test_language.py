"""Pages in the launch's language (en, ru, kk), and the pages reached without a launch."""

from __future__ import annotations

import copy
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_proctor import i18n
from lti_proctor.lti.claims import LAUNCH_PRESENTATION
from lti_proctor.lti.errors import REASON_TEXT, REGISTER_TEXT
from lti_proctor.lti.roles import Role, decide_destination
from tests.factories_attempts import EXAM_URL, PROCTOR_CONFIG, fake_service
from tests.launches import LaunchBuilder
from tests.results.world import ResultsWorld

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"


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


# -- error pages: no English sentence on a ru/kk reader's page ---------------------------------


@pytest.mark.parametrize("language", ["ru", "kk"])
def test_every_launch_and_registration_sentence_is_translated(language):
    sentences = {
        s
        for text in (*REASON_TEXT.values(), *REGISTER_TEXT.values())
        for s in (text.what, text.next_step)
    }
    sentences |= {decide_destination(frozenset(r)).ask_for for r in ([], [Role.TEACHING_ASSISTANT])}
    untranslated = sorted(s for s in sentences if i18n.translate(language, s) == s)
    assert untranslated == []


def test_role_refusal_in_russian_says_what_and_what_to_do_in_russian(lms):
    overrides = with_locale(lms, "ru-RU") | {"roles": [LIS + "membership#Mentor"]}
    resp = lms.launch(overrides=overrides)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 403
    assert html_lang(resp) == "ru"
    assert "Ваша роль в этом курсе не даёт доступа к этой странице." in page
    assert "Чтобы сдать экзамен, попросите преподавателя" in page
    assert "launch.role_not_allowed" in page
    assert "Your role" not in page and "What you can do" not in page
    back = re.search(r'class="back" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(back).query)["lti_errormsg"] == [
        "Ваша роль в этом курсе не даёт доступа к этой странице."
    ]


@pytest.mark.parametrize(
    ("accept", "lang", "what", "next_step"),
    [
        ("kk-KZ", "kk", "Іске қосу браузеріңіз бастаған кіруге", "Курсқа оралып"),
        ("ru", "ru", "Запуск не совпал со входом", "Вернитесь в курс"),
    ],
)
def test_refused_launch_before_validation_speaks_the_browser_language(
    client, accept, lang, what, next_step
):
    resp = client.post(
        "/lti/launch", data={"id_token": "x.y.z"}, headers={"Accept-Language": accept}
    )
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert html_lang(resp) == lang
    assert what in page and next_step in page
    assert "launch.state_mismatch" in page and "Go back to the course" not in page


@pytest.mark.parametrize(
    ("method", "path", "status", "lang", "title"),
    [
        ("get", "/no/such/page", 404, "ru", "Страница не найдена"),
        ("get", "/no/such/page", 404, "kk", "Бет табылмады"),
        ("delete", "/lti/launch", 405, "ru", "Здесь это не разрешено"),
        ("get", "/no/such/page", 404, "en", "Page not found"),
    ],
)
def test_http_error_pages_speak_the_browser_language(client, method, path, status, lang, title):
    resp = getattr(client, method)(path, headers={"Accept-Language": lang})
    page = resp.get_data(as_text=True)
    assert resp.status_code == status
    assert html_lang(resp) == lang
    assert f"<h1>{title}</h1>" in page
    if lang != "en":
        assert "Not Found" not in page and "Method Not Allowed" not in page


def test_unexpected_error_page_speaks_the_browser_language(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken():
        raise RuntimeError("boom")

    app.add_url_rule("/broken-for-test", view_func=broken)
    resp = client.get("/broken-for-test", headers={"Accept-Language": "kk"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 500
    assert html_lang(resp) == "kk" and "Бірдеңе дұрыс болмады" in page
    assert "boom" not in page and "Something went wrong" not in page


def test_registration_refusal_speaks_the_browser_language(client):
    resp = client.get("/lti/register", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 403
    assert html_lang(resp) == "ru"
    assert "Инструмент не зарегистрирован" in page
    assert "нет действующего приглашения" in page and "register.invite_invalid" in page
    assert "The tool was not registered" not in page and "What you can do" not in page


def test_cached_template_messages_follow_each_requests_language(app):
    """Template messages are cached per process; each request still gets its own language,
    escaping and placeholders, as jinja's newstyle gettext gives them."""
    page = app.jinja_env.from_string(
        '{{ _("Exam") }}|{{ _("100%% sure") }}|{{ _("<b>%(name)s</b>", name="<i>") }}'
    )
    shown = []
    for accept in ("ru", "en", "ru", "kk-KZ"):
        with app.test_request_context("/", headers={"Accept-Language": accept}):
            shown.append(page.render())
    assert shown[0] == shown[2] == "Экзамен|100% sure|<b>&lt;i&gt;</b>"
    assert shown[1] == "Exam|100% sure|<b>&lt;i&gt;</b>"
    assert shown[3].split("|")[0] == i18n.translate("kk", "Exam") != "Exam"
