from __future__ import annotations

import html
import re
import select
import sqlite3

import psycopg
import pytest
import redis

from lti_proctor.extensions import db
from lti_proctor.web import exam_page
from tests.constants import PG_URL
from tests.factories_attempts import EXAM_URL, PROCTOR_CONFIG, fake_service
from tests.launches import LaunchBuilder, follow_starting_page, start_token


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG)
    return app_config


@pytest.fixture
def lms(app, client, http):
    return LaunchBuilder(app, client, http)


@pytest.fixture
def database_down(app, monkeypatch):
    """Every new database connection is refused, as when the server is down; call to start."""

    def stop():
        with app.app_context():
            engine = db.engine
        engine.dispose()
        refused = (
            sqlite3.OperationalError("unable to open database file")
            if engine.dialect.name == "sqlite"
            else psycopg.OperationalError("connection refused")
        )

        def refuse(*args, **kwargs):
            raise refused

        monkeypatch.setattr(engine.pool, "_creator", refuse)
        return lambda: monkeypatch.undo()

    return stop


def hidden_fields(page):
    return {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    }


def test_database_down_at_launch_is_a_503_page_whose_retry_works(
    app, client, lms, http, database_down
):
    fake_service(http)
    login = lms.login()
    token = lms.sign(lms.claims(login, overrides={"custom": {"exam_url": EXAM_URL}}))
    back = database_down()

    resp = lms.post(token, login.state)

    assert resp.status_code == 503
    page = resp.get_data(as_text=True)
    assert "tool.unavailable" in page and "Try again" in page
    assert resp.headers["Retry-After"] == "30"
    assert "Content-Security-Policy" in resp.headers
    form = hidden_fields(page)
    assert form == {"id_token": token, "state": login.state}

    back()
    retried = follow_starting_page(client, client.post("/lti/launch", data=form))
    assert retried.status_code == 200
    assert "question-wrapper" in retried.get_data(as_text=True)


def test_database_down_for_the_exam_api_is_a_503_json(app, client, database_down):
    with app.test_request_context():
        token = exam_page.sign("api", {"a": "00000000-0000-4000-8000-000000000000"})
    database_down()
    resp = client.get(
        "/exam/api/attempt/state",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "tool.unavailable"


def test_shared_store_down_at_login_is_a_503_page_with_a_retry(app, lms, app_config):
    if "REDIS_URL" not in app_config:
        pytest.skip("the SQLite run keeps the shared store in the database")
    store = app.extensions["lti_proctor_store"]
    store._r = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)

    login = lms.login()

    assert login.response.status_code == 503
    page = login.response.get_data(as_text=True)
    assert "tool.unavailable" in page
    assert hidden_fields(page)["iss"] == lms.fixture["login_initiation"]["iss"]


def test_shared_store_down_at_the_start_is_a_503_page_whose_retry_starts_the_exam(
    app, client, lms, http, app_config
):
    if "REDIS_URL" not in app_config:
        pytest.skip("the SQLite run keeps the shared store in the database")
    fake_service(http)
    starting = lms.launch(overrides={"custom": {"exam_url": EXAM_URL}}, follow_start=False)
    store = app.extensions["lti_proctor_store"]
    working, store._r = store._r, redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)

    resp = follow_starting_page(client, starting)

    assert resp.status_code == 503
    page = resp.get_data(as_text=True)
    assert "tool.unavailable" in page and "Try again" in page
    assert 'action="/exam/start"' in page
    form = hidden_fields(page)
    assert form == {"token": start_token(starting)}

    store._r = working
    retried = client.post("/exam/start", data=form)
    assert retried.status_code == 200
    assert "question-wrapper" in retried.get_data(as_text=True)


def test_a_pooled_connection_the_database_closed_is_replaced_without_an_error(app, client):
    """A database restart closes every pooled connection: the next request still gets its answer."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to close a connection")
    engine.dispose()
    assert client.get("/readyz").status_code == 200  # the pool now holds one connection
    raw = engine.raw_connection()
    with raw.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fd = raw.driver_connection.fileno()
    raw.close()  # back to the pool, where the server will close it
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The server's goodbye reaches the pooled connection's socket (at most 10 s: a failed wait
    # leaves the assertion below to fail).
    select.select([fd], [], [], 10)

    resp = client.get("/readyz")

    assert resp.status_code == 200
