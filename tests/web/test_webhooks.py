from __future__ import annotations

import json

import psycopg
import pytest
from sqlalchemy import select

from lti_proctor.attempts import events
from lti_proctor.attempts.models import Attempt, WebhookEvent
from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.jobs.outbox import NOTIFY_CHANNEL
from lti_proctor.proctoring.profiles import get_profiles
from tests.constants import PG_URL
from tests.factories import make_platform
from tests.factories_attempts import deliver_webhook, make_attempt, webhook_body


def given_attempt(app, state=None, profile="standard"):
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)[profile], state=state)
        db.session.commit()
        db.session.refresh(attempt)
        db.session.expunge(attempt)
        return attempt


def snapshot(app, attempt_id):
    """What a user would check after a delivery: state, stored events and queued jobs."""
    with app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        events = db.session.scalars(select(WebhookEvent.kind)).all()
        jobs = db.session.execute(
            select(OutboxJob.kind, OutboxJob.payload).order_by(OutboxJob.id)
        ).all()
        return attempt.state, list(events), [(kind, payload) for kind, payload in jobs]


def test_start_webhook_starts_the_attempt_and_queues_the_gradebook(app, client, http):
    attempt = given_attempt(app)
    resp = deliver_webhook(client, attempt, "start")
    assert resp.status_code == 200
    assert resp.json == {"ok": True}
    state, events, jobs = snapshot(app, attempt.id)
    assert (state, events) == ("started", ["start"])
    assert jobs == [("ags.publish_status", {"attempt_id": attempt.id, "state": "started"})]
    assert len(http.calls) == 0  # nothing outbound inside the request


def test_finish_webhook_keeps_service_ids_and_queues_report_fetch(app, client):
    attempt = given_attempt(app, state="started")
    assert deliver_webhook(client, attempt, "finish").status_code == 200
    state, _, jobs = snapshot(app, attempt.id)
    assert state == "finished"
    assert [kind for kind, _ in jobs][-2:] == ["ags.publish_status", "report.fetch"]
    with app.app_context():
        stored = db.session.get(Attempt, attempt.id)
        assert stored.service_attempt_id == "884211"
        assert stored.report_url == "https://app.proctor.example.test/report/884211"
        assert stored.finished_at.isoformat().startswith("2026-03-02T09:12:40")


@pytest.mark.parametrize(
    ("header", "query"),
    [
        ("wrong-secret", "same"),
        ("same", "wrong-secret"),
        (None, None),
        ("wrong-secret", None),
        (None, "wrong-secret"),
        ("", ""),
    ],
    ids=[
        "header-wrong",
        "query-wrong",
        "both-missing",
        "only-header-wrong",
        "only-query-wrong",
        "empty",
    ],
)
def test_forged_secret_is_401_and_changes_nothing(app, client, header, query):
    attempt = given_attempt(app)
    before = snapshot(app, attempt.id)
    resp = deliver_webhook(client, attempt, "start", header_secret=header, query_secret=query)
    assert resp.status_code == 401
    assert resp.mimetype == "text/plain"
    assert snapshot(app, attempt.id) == before


def test_secret_of_another_attempt_is_refused(app, client):
    mine = given_attempt(app)
    with app.app_context():
        other = make_attempt(
            make_platform(issuer="https://other.example"), get_profiles(app)["standard"]
        )
        db.session.commit()
        other_secret = other.webhook_secret
    resp = deliver_webhook(
        client, mine, "start", header_secret=other_secret, query_secret=other_secret
    )
    assert resp.status_code == 401
    assert snapshot(app, mine.id)[0] == "created"


def test_unknown_attempt_is_404(app, client):
    attempt = given_attempt(app)
    body = webhook_body(attempt, "start")
    body["attempt_id"] = body["session_data"]["external_id"] = (
        "9b2f0c7e-0000-4f7e-9d41-1b8a6f0e2a55"
    )
    resp = deliver_webhook(client, attempt, "start", body=body, query_ref=body["attempt_id"])
    assert resp.status_code == 404
    assert snapshot(app, attempt.id)[0] == "created"


def test_duplicate_delivery_is_a_no_op(app, client):
    attempt = given_attempt(app)
    assert deliver_webhook(client, attempt, "start").status_code == 200
    once = snapshot(app, attempt.id)
    again = deliver_webhook(client, attempt, "start")
    assert again.status_code == 200 and again.json == {"ok": True}
    assert snapshot(app, attempt.id) == once


def test_finish_before_start_is_accepted(app, client):
    attempt = given_attempt(app)
    assert deliver_webhook(client, attempt, "finish").status_code == 200
    state, _, jobs = snapshot(app, attempt.id)
    assert state == "finished"
    assert jobs == [
        ("ags.publish_status", {"attempt_id": attempt.id, "state": "finished"}),
        ("report.fetch", {"attempt_id": attempt.id}),
    ]


def test_start_after_finish_changes_nothing(app, client):
    attempt = given_attempt(app)
    deliver_webhook(client, attempt, "finish")
    state_before, _, jobs_before = snapshot(app, attempt.id)
    resp = deliver_webhook(client, attempt, "start")
    assert resp.status_code == 200
    state, events, jobs = snapshot(app, attempt.id)
    assert (state, jobs) == (state_before, jobs_before)
    assert events == ["finish", "start"]  # kept for the record, applied as nothing


def test_form_encoded_delivery_is_accepted(app, client):
    attempt = given_attempt(app)
    resp = deliver_webhook(client, attempt, "start", form=True)
    assert resp.status_code == 200
    with app.app_context():
        stored = db.session.get(Attempt, attempt.id)
        assert stored.state == "started"
        assert stored.service_attempt_id == "884211"
        event = db.session.scalars(select(WebhookEvent)).one()
        assert event.content_type == "application/x-www-form-urlencoded"
        assert "attempt_id=" in event.raw_body


def test_attempt_found_from_the_query_echo(app, client):
    attempt = given_attempt(app)
    body = {"event": "start", "status": "active"}
    resp = client.post(
        f"/webhooks/trustexam/start?sig={attempt.webhook_secret}&attempt_id={attempt.id}",
        data=json.dumps(body),
        content_type="application/json",
    )
    assert resp.status_code == 200
    assert snapshot(app, attempt.id)[0] == "started"


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"\xff\xfe\x00", "application/json", 400),
        (b"\xff\xfe\x00", "application/x-www-form-urlencoded", 404),
        (b"", "application/json", 400),
        (b"a[b][c]=1&&=", "application/x-www-form-urlencoded", 404),
        (b"<xml/>", "text/xml", 404),
    ],
)
def test_garbage_is_refused_without_a_500(app, client, raw, content_type, status):
    attempt = given_attempt(app)
    resp = deliver_webhook(
        client, attempt, "start", raw=raw, content_type=content_type, query_ref=None
    )
    assert resp.status_code == status
    assert snapshot(app, attempt.id)[0] == "created"


def test_unknown_event_path_is_404(app, client):
    attempt = given_attempt(app)
    assert deliver_webhook(client, attempt, "pause").status_code == 404


def test_event_for_a_failed_attempt_is_a_conflict(app, client):
    attempt = given_attempt(app)
    with app.app_context():
        db.session.get(Attempt, attempt.id).state = "failed"
        db.session.commit()
    resp = deliver_webhook(client, attempt, "start")
    assert resp.status_code == 409
    assert resp.get_data(as_text=True).strip() == "attempt.state_conflict"
    assert snapshot(app, attempt.id)[0] == "failed"


class CountingStream:
    """An endless request body that counts what the server read from it."""

    def __init__(self, stop_after=64 * 1024 * 1024):
        self.read_bytes = 0
        self.stop_after = stop_after

    def read(self, size=-1):
        if self.read_bytes >= self.stop_after:
            return b""
        size = 65536 if size is None or size < 0 else min(size, 65536)
        self.read_bytes += size
        return b" " * size

    def readline(self, size=-1):
        return self.read(size)


def _post_stream(client, attempt, stream, *, declared=None, secret=None):
    """POST stream as the body: with a declared Content-Length, or chunked (no length)."""
    sig = secret or attempt.webhook_secret
    environ = {"wsgi.input": stream}
    if declared is None:
        environ.update({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True})
    else:
        environ["CONTENT_LENGTH"] = str(declared)
    return client.post(
        f"/webhooks/trustexam/finish?sig={sig}&attempt_id={attempt.id}",
        content_type="application/json",
        headers={"X-Tool-Webhook-Secret": sig},
        environ_overrides=environ,
    )


def test_oversized_declared_body_is_413_unread_and_stores_nothing(app, client):
    attempt = given_attempt(app)
    before = snapshot(app, attempt.id)
    stream = CountingStream()
    resp = _post_stream(client, attempt, stream, declared=300 * 1024 * 1024)
    assert resp.status_code == 413
    assert resp.json["error"] == "request.too_large"
    assert stream.read_bytes == 0
    assert snapshot(app, attempt.id) == before


def test_oversized_streamed_body_is_413_after_reading_no_more_than_the_limit(app, client):
    attempt = given_attempt(app)
    before = snapshot(app, attempt.id)
    stream = CountingStream()
    resp = _post_stream(client, attempt, stream)
    assert resp.status_code == 413
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit <= stream.read_bytes <= limit + 65536
    assert snapshot(app, attempt.id) == before


def test_oversized_body_with_a_wrong_secret_is_401_without_reading_it(app, client):
    attempt = given_attempt(app)
    stream = CountingStream()
    resp = _post_stream(client, attempt, stream, declared=300 * 1024 * 1024, secret="forged")
    assert resp.status_code == 401
    assert stream.read_bytes == 0
    assert snapshot(app, attempt.id)[0] == "created"


def test_oversized_launch_form_is_a_readable_413_page(client):
    resp = client.post(
        "/lti/launch",
        data=b"id_token=" + b"x" * (2 * 1024 * 1024),
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 413
    assert resp.mimetype == "text/html"
    assert b"request.too_large" in resp.data


def test_garbage_json_with_the_right_secret_is_400_and_stores_nothing(app, client):
    attempt = given_attempt(app)
    before = snapshot(app, attempt.id)
    resp = deliver_webhook(client, attempt, "finish", raw=b"{nope", content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_data(as_text=True).strip() == "webhook.bad_body"
    assert snapshot(app, attempt.id) == before


@pytest.mark.parametrize(
    "ref",
    ["x" * 5000, "a\x00b", "../../etc", ""],
    ids=["long", "nul", "path", "empty"],
)
def test_unreadable_attempt_ref_in_the_query_is_404(app, client, ref):
    attempt = given_attempt(app)
    body = webhook_body(attempt, "start")
    body["attempt_id"] = body["session_data"]["external_id"] = "unknown"
    resp = deliver_webhook(client, attempt, "start", body=body, query_ref=ref)
    assert resp.status_code == 404
    assert snapshot(app, attempt.id)[0] == "created"


def test_over_long_and_nul_values_in_a_form_body_are_dropped_not_a_500(app, client):
    attempt = given_attempt(app)
    body = webhook_body(attempt, "finish")
    body["attempt"]["id"] = "9" * 500
    body["report_url"] = "https://x.example/" + "a" * 3000
    body["status"] = "clo\x00sed"
    resp = deliver_webhook(client, attempt, "finish", body=body, form=True)
    assert resp.status_code == 200
    with app.app_context():
        stored = db.session.get(Attempt, attempt.id)
        assert stored.state == "finished"
        assert stored.service_attempt_id is None
        assert stored.report_url != body["report_url"]


def test_identical_finish_resent_after_a_lost_race_repairs_the_attempt(app, client):
    attempt = given_attempt(app)
    deliver_webhook(client, attempt, "start")
    deliver_webhook(client, attempt, "finish")
    with app.app_context():  # what a finish lost to its own start used to leave behind
        db.session.get(Attempt, attempt.id).state = "started"
        db.session.execute(OutboxJob.__table__.delete())
        db.session.commit()
    resp = deliver_webhook(client, attempt, "finish")
    assert resp.status_code == 200
    state, events, jobs = snapshot(app, attempt.id)
    assert (state, sorted(events)) == ("finished", ["finish", "start"])  # stored once
    assert jobs == [
        ("ags.publish_status", {"attempt_id": attempt.id, "state": "finished"}),
        ("report.fetch", {"attempt_id": attempt.id}),
    ]


def test_a_redelivery_with_the_same_timestamp_is_the_same_event(app, client):
    attempt = given_attempt(app)
    body = webhook_body(attempt, "finish")
    deliver_webhook(client, attempt, "finish", body=body)
    body["metadata"] = {"retry": 2}  # the service's retry may differ in detail, not in identity
    deliver_webhook(client, attempt, "finish", body=body)
    assert snapshot(app, attempt.id)[1] == ["finish"]


def test_events_with_their_own_ids_are_told_apart_by_them(app, client):
    attempt = given_attempt(app)
    for event_id in ("evt-1", "evt-2", "evt-1"):
        body = webhook_body(attempt, "start") | {"event_id": event_id}
        assert deliver_webhook(client, attempt, "start", body=body).status_code == 200
    state, events, jobs = snapshot(app, attempt.id)
    assert (state, events) == ("started", ["start", "start"])
    assert len(jobs) == 1


def test_a_finish_webhook_wakes_the_idle_workers(app, client):
    """PostgreSQL: the webhook's jobs NOTIFY the workers' channel once the delivery commits."""
    attempt = given_attempt(app, state="started")
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        assert deliver_webhook(client, attempt, "finish").status_code == 200
        woken = list(listener.notifies(timeout=10, stop_after=1))
    assert [n.channel for n in woken] == [NOTIFY_CHANNEL]


def test_an_attempt_removed_between_the_check_and_the_write_is_404(app, client, monkeypatch):
    """Removing a registration removes its attempts: a delivery caught in between is unknown."""
    attempt = given_attempt(app, state="started")
    real = events.find_webhook_secret

    def secret_then_removed(attempt_id):
        secret = real(attempt_id)
        with app.app_context():  # another request removes the attempt meanwhile
            db.session.execute(Attempt.__table__.delete().where(Attempt.id == attempt_id))
            db.session.commit()
        return secret

    monkeypatch.setattr(events, "find_webhook_secret", secret_then_removed)
    _, _, jobs_before = snapshot(app, attempt.id)
    resp = deliver_webhook(client, attempt, "finish")
    assert resp.status_code == 404
    assert resp.get_data(as_text=True).strip() == "webhook.attempt_unknown"
    with app.app_context():
        assert db.session.scalars(select(WebhookEvent)).all() == []
        jobs = db.session.execute(select(OutboxJob.kind, OutboxJob.payload)).all()
        assert [(kind, payload) for kind, payload in jobs] == jobs_before
