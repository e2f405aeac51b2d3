from __future__ import annotations

import html
import json
import re
import threading
import time

import itsdangerous
import pytest
import responses
from sqlalchemy import func, select, update

from lti_proctor.attempts import operations
from lti_proctor.attempts.models import Attempt
from lti_proctor.exam_settings import unseal_code
from lti_proctor.extensions import db
from lti_proctor.lti.platforms import remove_platform
from lti_proctor.lti.registrations import Platform
from lti_proctor.proctoring import client as proctoring_client
from lti_proctor.proctoring.client import from_config
from lti_proctor.store import get_store
from lti_proctor.web import exam_page
from tests.exam_links import exam_custom
from tests.factories_attempts import (
    ACCESS_CODE,
    EXAM_URL,
    NOW,
    PROCTOR_CONFIG,
    SESSION_URL,
    FakeService,
    fake_service,
)
from tests.launches import LaunchBuilder, start_token, table_counts

SDK_ORIGIN = "https://sdk.proctor.example.test"
CUSTOM = {"exam_url": EXAM_URL, "access_code": ACCESS_CODE}


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


@pytest.fixture
def service(http):
    return fake_service(http)


@pytest.fixture
def lms(app, client, http):
    """A registered Moodle whose launches reach the exam page."""
    return LaunchBuilder(app, client, http)


def launch(lms, *, custom=None, **overrides):
    """A student launch; an access code goes into settings kept in the tool (deep linking's)."""
    custom = CUSTOM if custom is None else custom
    if "access_code" in custom:
        custom = exam_custom(lms, custom)
    return lms.launch(overrides={"custom": custom, **overrides})


def data_attr(resp, name):
    match = re.search(rf'data-{name}="([^"]*)"', resp.get_data(as_text=True))
    assert match, f"data-{name} missing"
    return html.unescape(match.group(1))


def unseal(app, stored):
    with app.app_context():
        return unseal_code(stored)


def csp(resp):
    policy = resp.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def attempts_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Attempt))


def only_attempt(app):
    with app.app_context():
        attempt = db.session.scalars(select(Attempt)).one()
        db.session.expunge(attempt)
        return attempt


def api(client, method, path, token, **kwargs):
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    return client.open(f"/exam/api/attempt/{path}", method=method, headers=headers, **kwargs)


def start_webhook(client, attempt):
    return client.post(
        f"/webhooks/trustexam/start?sig={attempt.webhook_secret}",
        json={"event": "start", "status": "active", "attempt_id": attempt.id},
        headers={"X-Tool-Webhook-Secret": attempt.webhook_secret},
    )


# -- the page ------------------------------------------------------------------------------------


def test_learner_launch_mounts_sdk_with_token_and_protector(lms, service):
    resp = launch(lms)
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert f'<script src="{PROCTOR_CONFIG["TRUSTEXAM_SDK_URL"]}"></script>' in page
    assert data_attr(resp, "sdk-token") == "sdk-token-1"
    assert data_attr(resp, "protector-match") == ".question-wrapper"
    assert 'class="question-wrapper"' in page
    assert 'class="wrapper"' in page
    assert data_attr(resp, "sdk-language") == "en"
    assert data_attr(resp, "api-token")


def test_initial_page_reveals_no_exam_url_access_code_or_secrets(app, lms, service):
    resp = launch(lms)
    page = resp.get_data(as_text=True)
    attempt = only_attempt(app)
    for secret in (EXAM_URL, html.escape(EXAM_URL), "mod/quiz/view.php", ACCESS_CODE):
        assert secret not in page
    assert attempt.webhook_secret not in page
    assert attempt.report_url not in page


def test_page_has_no_inline_script(lms, service):
    page = launch(lms).get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert " on" + "click=" not in page and "javascript:" not in page


def test_csp_allows_exactly_the_sdk_the_exam_and_the_lms(lms, service):
    resp = launch(lms)
    policy = csp(resp)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'", SDK_ORIGIN]
    assert policy["connect-src"][:2] == ["'self'", SDK_ORIGIN]
    assert policy["frame-src"] == ["https://moodle.example.edu"]
    assert policy["frame-ancestors"] == ["'self'", "https://moodle.example.edu"]
    assert "X-Frame-Options" not in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"


def test_canvas_page_may_be_framed_by_the_school_host(app, client, http):
    fake_service(http)
    canvas = LaunchBuilder(app, client, http, family="canvas")
    custom = {"exam_url": "https://school.instructure.com/courses/1/quizzes/9"}
    policy = csp(canvas.launch(overrides={"custom": custom}))
    assert policy["frame-ancestors"] == [
        "'self'",
        "https://school.instructure.com",
        "https://canvas.instructure.com",
        "https://sso.canvaslms.com",
    ]
    assert policy["frame-src"] == ["https://school.instructure.com"]


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("kk", "kz"),
        ("kk-KZ", "kz"),
        ("kk_KZ", "kz"),
        ("ru", "ru"),
        ("ru-RU", "ru"),
        ("en-GB", "en"),
        ("de", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_sdk_language_from_launch_locale(locale, language):
    assert exam_page.sdk_language(locale) == language


def test_kazakh_launch_gets_the_kz_sdk_language(lms, service):
    presentation = {"locale": "kk-KZ", "document_target": "iframe"}
    resp = launch(lms, launch_presentation=presentation)
    assert data_attr(resp, "sdk-language") == "kz"


def test_relaunch_reuses_the_attempt_with_a_fresh_token(app, lms, service):
    launch(lms)
    resp = launch(lms)
    assert data_attr(resp, "sdk-token") == "sdk-token-2"
    assert attempts_count(app) == 1


def _write_from_another_connection(app):
    """Touch every attempt row from another thread's session: the row count, or why it failed."""
    outcome = []

    def write():
        with app.app_context():
            try:
                rows = db.session.execute(update(Attempt).values(number=Attempt.number)).rowcount
                db.session.commit()
                outcome.append(rows)
            except Exception as exc:  # reported below
                outcome.append(repr(exc))
            finally:
                db.session.remove()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(timeout=3)
    return outcome[0] if outcome else "blocked: the launch holds a lock"


def test_no_transaction_is_open_while_the_service_answers(app, lms, http):
    service = FakeService()
    seen = []

    def upsert(request):
        seen.append((db.session().in_transaction(), _write_from_another_connection(app)))
        return service(request)

    http.add_callback(responses.POST, SESSION_URL, callback=upsert)
    assert launch(lms).status_code == 200  # a new attempt
    assert launch(lms).status_code == 200  # the same attempt, resumed
    # Both times the attempt row was already committed (visible, 1 row) and not locked.
    assert seen == [(False, 1), (False, 1)]


def test_launches_of_one_app_share_one_proctoring_client(app, lms, service, monkeypatch):
    built = []

    def counting_from_config(config):
        built.append(config["TRUSTEXAM_API_BASE"])
        return from_config(config)

    monkeypatch.setattr(proctoring_client, "from_config", counting_from_config)
    for _ in range(3):
        assert launch(lms).status_code == 200
    assert built == [PROCTOR_CONFIG["TRUSTEXAM_API_BASE"]]
    assert service.calls == 3
    assert proctoring_client.get_client(app) is app.extensions[proctoring_client.EXTENSION_KEY]


def test_instructor_sees_the_instructor_page_and_no_attempt_starts(app, client, http):
    teacher = LaunchBuilder(app, client, http, message="instructor")
    resp = teacher.launch()
    assert resp.status_code == 200
    assert b"Proctoring results" in resp.data  # the instructor view (tests/web/test_instructor.py)
    assert attempts_count(app) == 0
    assert len([c for c in http.calls if "external-session" in c.request.url]) == 0


def test_unknown_profile_is_a_launch_error_page(app, lms, service):
    resp = launch(lms, custom={**CUSTOM, "proctoring_profile": "no_such_profile"})
    assert resp.status_code == 400
    assert b"launch.profile_unknown" in resp.data
    assert attempts_count(app) == 0
    assert service.calls == 0


def test_finished_student_without_attempts_left_sees_the_finished_page(app, lms, service):
    launch(lms)
    with app.app_context():
        operations.mark_finished(db.session.scalars(select(Attempt)).one(), now=NOW)
        db.session.commit()
    resp = launch(lms)
    assert resp.status_code == 200
    assert b"You have finished this exam" in resp.data
    assert b"Proctoring.initialize" not in resp.data and b"data-sdk-token" not in resp.data
    assert attempts_count(app) == 1


def test_max_attempts_custom_parameter_allows_another_attempt(app, lms, service):
    launch(lms, custom={**CUSTOM, "max_attempts": "2"})
    with app.app_context():
        operations.mark_finished(db.session.scalars(select(Attempt)).one(), now=NOW)
        db.session.commit()
    resp = launch(lms, custom={**CUSTOM, "max_attempts": "2"})
    assert data_attr(resp, "sdk-token") == "sdk-token-2"
    assert attempts_count(app) == 2


# -- the starting page and POST /exam/start -------------------------------------------------------


def starting(lms, **overrides):
    """A student's launch, not followed: the starting page itself."""
    custom = exam_custom(lms, CUSTOM)
    return lms.launch(overrides={"custom": custom, **overrides}, follow_start=False)


def start(client, token):
    return client.post("/exam/start", data={"token": token})


def token_payload(token):
    """What anyone holding the page can read in a signed token (its payload is only encoded)."""
    _, payload = itsdangerous.URLSafeTimedSerializer("no key needed").loads_unsafe(token)
    return json.dumps(payload)


def test_launch_answers_the_starting_page_before_asking_the_service(app, lms, service):
    resp = starting(lms)

    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Starting your exam…" in page
    assert 'class="spinner"' in page
    assert data_attr(resp, "elapsed") == "Connecting to the proctoring service… %(seconds)s s"
    assert service.calls == 0 and attempts_count(app) == 0  # the start comes from the page
    assert re.search(r'<form id="exam-starting-form" method="post" action="/exam/start"', page)
    assert "data-auto-submit" in page and "<noscript><button" in page
    assert re.search(r'<p id="exam-starting-slow"[^>]* hidden>This is taking longer', page)
    assert data_attr(resp, "slow-after-s") == "20"
    assert '<script src="/static/exam_starting.js" defer></script>' in page
    assert resp.headers["Cache-Control"] == "no-store"


def test_starting_page_holds_no_exam_url_access_code_or_inline_script(lms, service):
    resp = starting(lms)
    page = resp.get_data(as_text=True)
    payload = token_payload(start_token(resp))
    for secret in (EXAM_URL, html.escape(EXAM_URL), "mod/quiz/view.php", ACCESS_CODE):
        assert secret not in page
        assert secret not in payload
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert " on" + "click=" not in page and "javascript:" not in page
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "form-action 'self'" in policy


@pytest.mark.parametrize(
    ("locale", "lang", "heading", "elapsed"),
    [
        ("ru-RU", "ru", "Запуск экзамена…", "Подключение к сервису прокторинга… %(seconds)s с"),
        ("kk", "kk", "Емтихан басталуда…", "Прокторинг қызметіне қосылу… %(seconds)s с"),
    ],
)
def test_starting_page_speaks_the_launch_language(lms, service, locale, lang, heading, elapsed):
    resp = starting(lms, launch_presentation={"locale": locale})
    page = resp.get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert heading in page
    assert data_attr(resp, "elapsed") == elapsed


def test_start_answers_the_exam_page(app, client, lms, service):
    resp = start(client, start_token(starting(lms)))
    assert resp.status_code == 200
    assert data_attr(resp, "sdk-token") == "sdk-token-1"
    assert ACCESS_CODE not in resp.get_data(as_text=True)
    assert attempts_count(app) == 1


def test_the_same_start_token_again_resumes_the_attempt(app, client, lms, service):
    token = start_token(starting(lms))
    first = start(client, token)
    again = start(client, token)  # a reload of the exam page, or the start in a second tab
    assert (first.status_code, again.status_code) == (200, 200)
    assert data_attr(again, "sdk-token") == "sdk-token-2"  # the same session, a fresh SDK token
    assert attempts_count(app) == 1


def test_two_tabs_launched_together_start_one_attempt(app, client, lms, service):
    first, second = start_token(starting(lms)), start_token(starting(lms))
    assert start(client, second).status_code == 200
    assert start(client, first).status_code == 200
    assert attempts_count(app) == 1


@pytest.mark.parametrize("kind", ["forged", "expired", "content-gone", "none"])
def test_a_bad_start_token_is_the_expired_page_and_stores_nothing(app, client, lms, service, kind):
    token = start_token(starting(lms))
    signed = json.loads(token_payload(token))
    if kind == "content-gone":  # the exam content waited in the store longer than it keeps
        with app.app_context():
            get_store().delete(signed["k"])
    bad = {
        "forged": token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb"),
        "expired": _expired_token(app, signed, purpose="retry"),
        "content-gone": token,
        "none": "",
    }[kind]
    before = table_counts(app)

    resp = start(client, bad)

    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "This page has expired" in page and "exam.retry_expired" in page
    assert "Open the exam again from your course page." in page
    assert table_counts(app) == before
    assert service.calls == 0


def test_a_start_whose_registration_was_removed_since_the_launch_is_the_expired_page(
    app, client, lms, service
):
    token = start_token(starting(lms))
    with app.app_context():  # an admin removes the LMS's registration meanwhile
        for platform in db.session.scalars(select(Platform)):
            remove_platform(platform)
        db.session.commit()

    resp = start(client, token)

    assert resp.status_code == 400
    assert "This page has expired" in resp.get_data(as_text=True)
    assert attempts_count(app) == 0
    assert service.calls == 0


def test_service_down_at_the_start_is_the_retry_page_and_retry_works(app, client, lms, http):
    service = fake_service(http, status=503)
    launched = starting(lms)
    assert launched.status_code == 200  # the launch itself went well

    down = start(client, start_token(launched))

    assert down.status_code == 503
    page = down.get_data(as_text=True)
    assert "proctor.unavailable" in page and 'action="/exam/retry"' in page
    assert ACCESS_CODE not in page and "mod/quiz/view.php" not in page
    assert attempts_count(app) == 0
    service.status = 200
    retry_token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    assert data_attr(client.post("/exam/retry", data={"token": retry_token}), "sdk-token")
    assert attempts_count(app) == 1


def test_a_refused_launch_shows_no_starting_page(app, lms, service):
    before = table_counts(app)
    resp = lms.launch(overrides={"custom": {"exam": "no-such-exam"}}, follow_start=False)
    assert resp.status_code == 404
    assert "launch.exam_not_found" in resp.get_data(as_text=True)
    assert start_token(resp) is None
    assert "Starting your exam" not in resp.get_data(as_text=True)
    assert table_counts(app) == before


# -- the attempt API -----------------------------------------------------------------------------


def test_content_is_refused_until_the_start_webhook(app, client, lms, service):
    token = data_attr(launch(lms), "api-token")
    refused = api(client, "GET", "content", token)
    assert refused.status_code == 403
    assert refused.json["error"] == "attempt.not_started"
    assert ACCESS_CODE not in refused.get_data(as_text=True)
    assert start_webhook(client, only_attempt(app)).status_code == 200
    state = api(client, "GET", "state", token)
    assert state.json["started"] is True
    content = api(client, "GET", "content", token)
    assert content.status_code == 200
    assert (content.json["exam_url"], content.json["access_code"]) == (EXAM_URL, ACCESS_CODE)


def test_sdk_start_report_is_refused_for_the_standard_profile(app, client, lms, service):
    token = data_attr(launch(lms), "api-token")
    resp = api(client, "POST", "started", token)
    assert resp.status_code == 403
    assert resp.json["error"] == "attempt.start_proof_webhook"
    assert api(client, "GET", "content", token).status_code == 403
    assert only_attempt(app).state == "created"


def test_low_stakes_exam_opens_after_the_sdk_reports_its_start(app, client, lms, service):
    resp = launch(lms, custom={**CUSTOM, "proctoring_profile": "low_stakes"})
    assert data_attr(resp, "start-proof") == "sdk"
    token = data_attr(resp, "api-token")
    assert api(client, "GET", "content", token).status_code == 403
    started = api(client, "POST", "started", token)
    assert started.status_code == 200 and started.json["started"] is True
    content = api(client, "GET", "content", token)
    assert content.json["access_code"] == ACCESS_CODE


def test_submitted_is_recorded_without_finishing(app, client, lms, service):
    token = data_attr(launch(lms), "api-token")
    resp = api(client, "POST", "submitted", token, json={"proctoring_incomplete": False})
    assert resp.status_code == 200
    attempt = only_attempt(app)
    assert attempt.submitted_at is not None
    assert attempt.state == "created"  # the finish webhook stays the authority


def _expired_token(app, payload, *, purpose="api"):
    """A token signed two hours ago."""
    real = itsdangerous.timed.TimestampSigner.get_timestamp
    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: int(time.time()) - 7200
    try:
        with app.app_context():
            return exam_page.sign(purpose, payload)
    finally:
        itsdangerous.timed.TimestampSigner.get_timestamp = real


@pytest.mark.parametrize("kind", ["tampered", "expired", "other-purpose", "other-key", "none"])
def test_api_refuses_bad_tokens_with_401(app, client, lms, service, kind):
    resp = launch(lms)
    good = data_attr(resp, "api-token")
    attempt_id = only_attempt(app).id
    other_key = itsdangerous.URLSafeTimedSerializer("another-secret", salt="lti-proctor.exam.api")
    token = {
        "tampered": good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb"),
        "expired": _expired_token(app, {"a": attempt_id}),
        "other-purpose": data_attr(resp, "open-url").rsplit("/", 1)[1],
        "other-key": other_key.dumps({"a": attempt_id}),
        "none": "",
    }[kind]
    refused = api(client, "GET", "state", token)
    assert refused.status_code == 401
    assert refused.json["error"] == "token.invalid"
    assert api(client, "GET", "state", good).status_code == 200


def test_every_api_answer_renews_the_token(lms, client, service):
    token = data_attr(launch(lms), "api-token")
    renewed = api(client, "GET", "state", token).json["token"]
    assert api(client, "GET", "state", renewed).status_code == 200


# -- new window and service down -----------------------------------------------------------------


def test_signed_link_opens_the_same_attempt_in_a_new_window(app, client, lms, service):
    resp = launch(lms)
    link = data_attr(resp, "open-url")
    assert link.startswith("https://tool.example.com/exam/open/")
    opened = client.get(link.removeprefix("https://tool.example.com"))
    assert opened.status_code == 200
    assert data_attr(opened, "sdk-token") == "sdk-token-1"
    assert ACCESS_CODE not in opened.get_data(as_text=True)
    assert api(client, "GET", "state", data_attr(opened, "api-token")).status_code == 200
    assert attempts_count(app) == 1


def test_forged_new_window_link_is_refused(client, lms, service):
    link = data_attr(launch(lms), "open-url").removeprefix("https://tool.example.com")
    assert client.get(link + "x").status_code == 401


@pytest.mark.parametrize(
    ("status", "code", "page_status"),
    [
        (503, b"proctor.unavailable", 503),
        (500, b"proctor.unavailable", 503),
        (422, b"proctor.rejected", 502),
    ],
)
def test_service_down_shows_retry_page_and_leaves_no_attempt(
    app, lms, http, status, code, page_status
):
    fake_service(http, status=status)
    resp = launch(lms)
    assert resp.status_code == page_status
    page = resp.get_data(as_text=True)
    assert code.decode() in page
    assert 'action="/exam/retry"' in page and "Try again" in page
    assert ACCESS_CODE not in page and "mod/quiz/view.php" not in page
    assert attempts_count(app) == 0


def test_retry_works_once_the_service_is_back(app, client, lms, http):
    service = fake_service(http, status=503)
    down = launch(lms)
    retry_token = re.search(r'name="token" value="([^"]+)"', down.get_data(as_text=True)).group(1)
    service.status = 200
    resp = client.post("/exam/retry", data={"token": retry_token})
    assert resp.status_code == 200
    assert data_attr(resp, "sdk-token") == "sdk-token-2"
    assert attempts_count(app) == 1
    attempt = only_attempt(app)
    assert (attempt.exam_url, unseal(app, attempt.access_code)) == (EXAM_URL, ACCESS_CODE)
    assert ACCESS_CODE not in attempt.access_code  # sealed at rest


def test_forged_retry_is_refused(app, client, lms, service):
    resp = client.post("/exam/retry", data={"token": "forged"})
    assert resp.status_code == 400
    assert b"exam.retry_expired" in resp.data
    assert attempts_count(app) == 0


def _set_deployment_default(app, profile):
    from lti_proctor.lti.registrations import Deployment

    with app.app_context():
        for deployment in db.session.scalars(select(Deployment)):
            deployment.default_profile = profile
        db.session.commit()


def test_deployment_default_profile_applies_without_custom_parameter(app, lms, service):
    _set_deployment_default(app, "low_stakes")
    resp = launch(lms)
    assert data_attr(resp, "start-proof") == "sdk"
    assert only_attempt(app).profile_name == "low_stakes"


def test_custom_parameter_profile_wins_over_deployment_default(app, lms, service):
    _set_deployment_default(app, "low_stakes")
    resp = launch(lms, custom={**CUSTOM, "proctoring_profile": "high_stakes"})
    assert data_attr(resp, "start-proof") == "webhook"
    assert service.bodies[0]["assignment"]["application"] == "tray"
