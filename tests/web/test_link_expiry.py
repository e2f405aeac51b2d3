from __future__ import annotations

import html
import re
import time

import pytest

from tests.results.world import RESULTS_CONFIG, ResultsWorld

HOUR = 3600


@pytest.fixture
def app_config(app_config):
    app_config.update(RESULTS_CONFIG)
    return app_config


@pytest.fixture
def moodle(app, client, http):
    return ResultsWorld(app, client, http)


@pytest.fixture
def later(monkeypatch):
    """later(seconds): move the wall clock (itsdangerous's and ours) forward."""
    offset = [0.0]
    real = time.time

    def move(seconds):
        offset[0] += seconds
        monkeypatch.setattr(time, "time", lambda: real() + offset[0])

    return move


def list_link(resp):
    links = [html.unescape(h) for h in re.findall(r'href="(/instructor/[^"]+)"', resp.text)]
    return next(link for link in links if link.endswith("/attempts.csv")).removesuffix(".csv")


def test_instructor_links_end_a_working_day_after_the_launch_however_often_refreshed(moodle, later):
    moodle.student_attempt()
    link = list_link(moodle.launch(role="instructor"))
    for _ in range(7):  # a refresh every 55 minutes keeps the view open for most of the day
        later(55 * 60)
        resp = moodle.client.get(link)
        assert resp.status_code == 200
        link = list_link(resp)
    later(75 * 60)  # 7 h 40 min of refreshes, then past 8 h since the launch

    resp = moodle.client.get(link)

    assert resp.status_code == 401
    assert "instructor.token_invalid" in resp.text


def test_instructor_link_window_is_configurable(app, moodle, later):
    app.config["PROCTOR_INSTRUCTOR_LINK_MAX_S"] = HOUR // 2
    moodle.student_attempt()
    link = list_link(moodle.launch(role="instructor"))
    later(20 * 60)
    link = list_link(moodle.client.get(link))
    later(15 * 60)
    assert moodle.client.get(link).status_code == 401


def page_token(resp):
    match = re.search(r'data-api-token="([^"]*)"', resp.text)
    assert match
    return html.unescape(match.group(1))


def state(moodle, token):
    return moodle.client.get(
        "/exam/api/attempt/state",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


def test_exam_page_token_ends_with_the_exams_window_however_often_refreshed(app, moodle, later):
    app.config["PROCTOR_EXAM_LINK_MAX_S"] = 2 * HOUR
    token = page_token(moodle.launch())
    for _ in range(4):  # the page polls and gets a fresh token each time
        later(25 * 60)
        resp = state(moodle, token)
        assert resp.status_code == 200
        token = resp.get_json()["token"]
    later(25 * 60)  # 2 h 5 min after the launch

    resp = state(moodle, token)

    assert resp.status_code == 401
    assert resp.get_json()["error"] == "token.invalid"
