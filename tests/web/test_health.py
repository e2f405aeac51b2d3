"""/healthz, /readyz and /metrics: what an operator's probes and Prometheus see."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from lti_proctor.extensions import db
from lti_proctor.jobs.models import JobStatus, OutboxJob
from lti_proctor.jobs.outbox import enqueue
from tests.factories_attempts import EXAM_URL, PROCTOR_CONFIG, fake_service
from tests.launches import LaunchBuilder

UNREACHABLE_PG = "postgresql+psycopg://root:pw-never-shown@127.0.0.1:1/nowhere"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_healthz_answers_without_touching_anything(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz_says_ready_when_database_and_redis_answer(app: Flask, client: FlaskClient) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    expected_redis = "ok" if app.config.get("REDIS_URL") else "skipped"
    assert body["checks"]["redis"] == expected_redis
    assert body["checks"]["migrations"] == "ok"


def test_readyz_is_503_when_the_schema_is_behind_this_release(
    app: Flask, client: FlaskClient
) -> None:
    from lti_proctor.schema import script_directory

    newest, previous = list(script_directory().walk_revisions())[:2]

    def stamp(revision: str) -> None:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})

    stamp(previous.revision)  # as if this release's last migration had not been applied yet
    try:
        resp = client.get("/readyz")
    finally:
        stamp(newest.revision)  # the PostgreSQL schema is shared by the session's tests
    assert resp.status_code == 503
    migrations = resp.get_json()["checks"]["migrations"]
    assert migrations == "failed: 1 pending (run lti-proctor db upgrade)"


def test_readyz_is_503_naming_the_database_when_it_is_unreachable(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schema check at start needs the database, so it goes away after the start: every new
    # connection is refused, with a message that names the host and password, as drivers do.
    with app.app_context():
        engine = db.engine
    engine.dispose()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("connection to 127.0.0.1:5432 (password pw-never-shown) refused")

    monkeypatch.setattr(engine.pool, "_creator", refuse)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.content_type == "application/json"
    body = resp.get_json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("failed: ")
    assert "pw-never-shown" not in resp.get_data(as_text=True)
    assert "127.0.0.1" not in resp.get_data(as_text=True)
    monkeypatch.undo()


@pytest.fixture
def broken_redis(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    return app_config


def test_readyz_is_503_naming_redis_when_it_is_unreachable(
    broken_redis: dict[str, Any], client: FlaskClient
) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 503
    checks = resp.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"].startswith("failed: ")


def test_metrics_show_the_outbox_depth_oldest_age_and_dead_jobs_by_kind(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        enqueue("ags.publish_status", {"attempt_id": "a"})
        enqueue("ags.publish_status", {"attempt_id": "b"})
        dead = enqueue("report.fetch", {"attempt_id": "c"})
        assert dead is not None
        dead.status = JobStatus.FAILED.value
        db.session.commit()
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    text = resp.get_data(as_text=True)
    assert 'lti_proctor_outbox_jobs{kind="ags.publish_status",status="todo"} 2.0' in text
    assert 'lti_proctor_outbox_dead_jobs{kind="report.fetch"} 1.0' in text
    assert 'lti_proctor_outbox_oldest_job_age_seconds{kind="ags.publish_status"}' in text
    assert 'lti_proctor_outbox_oldest_job_age_seconds{kind="report.fetch"}' not in text


@pytest.fixture
def exam_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config.update(PROCTOR_CONFIG)
    return app_config


def test_metrics_count_a_launch_its_latency_and_its_service_call(
    exam_config: dict[str, Any], app: Flask, client: FlaskClient, http: Any
) -> None:
    fake_service(http)
    ok_before = sample("lti_proctor_launches_total", outcome="ok", reason="")
    seconds_before = sample("lti_proctor_launch_seconds_count")
    calls_before = sample("lti_proctor_service_call_seconds_count", operation="session_upsert")

    custom = {"exam_url": EXAM_URL}  # a legacy link: the access code is never in it
    resp = LaunchBuilder(app, client, http).launch(overrides={"custom": custom})
    assert resp.status_code == 200

    text = client.get("/metrics").get_data(as_text=True)
    assert 'lti_proctor_launches_total{outcome="ok",reason=""}' in text
    assert "lti_proctor_launch_seconds_bucket" in text
    assert 'lti_proctor_service_call_seconds_count{operation="session_upsert"}' in text
    assert sample("lti_proctor_launches_total", outcome="ok", reason="") == ok_before + 1
    assert sample("lti_proctor_launch_seconds_count") == seconds_before + 1
    assert (
        sample("lti_proctor_service_call_seconds_count", operation="session_upsert")
        == calls_before + 1
    )


def test_a_service_down_at_the_start_counts_the_launch_ok_and_the_service_error(
    exam_config: dict[str, Any], app: Flask, client: FlaskClient, http: Any
) -> None:
    fake_service(http, status=503)
    ok_before = sample("lti_proctor_launches_total", outcome="ok", reason="")
    errors = {"operation": "session_upsert", "kind": "unavailable"}
    errors_before = sample("lti_proctor_service_call_errors_total", **errors)

    custom = {"exam_url": EXAM_URL}
    resp = LaunchBuilder(app, client, http).launch(overrides={"custom": custom})

    assert resp.status_code == 503  # /exam/start's service-down page
    # The launch itself answered the starting page: it went well. The service call that
    # failed afterwards is counted where it happened.
    assert sample("lti_proctor_launches_total", outcome="ok", reason="") == ok_before + 1
    assert sample("lti_proctor_service_call_errors_total", **errors) == errors_before + 1


def test_metrics_count_a_refused_launch_by_its_reason_code(
    app: Flask, client: FlaskClient, lti_platform: Any
) -> None:
    labels = {"outcome": "refused", "reason": "launch.deployment_unknown"}
    before = sample("lti_proctor_launches_total", **labels)
    resp = lti_platform.launch(overrides={"deployment_id": "nope"})
    assert resp.status_code == 400
    assert sample("lti_proctor_launches_total", **labels) == before + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert 'reason="launch.deployment_unknown"' in text


def test_metrics_observe_webhook_acknowledgement_latency(client: FlaskClient) -> None:
    before = sample("lti_proctor_webhook_seconds_count", event="start", status="401")
    resp = client.post("/webhooks/trustexam/start", json={"attempt_id": "x"})
    assert resp.status_code == 401
    assert sample("lti_proctor_webhook_seconds_count", event="start", status="401") == before + 1


def test_outbox_gauges_leave_out_succeeded_jobs(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        job = enqueue("ags.publish_status", {"attempt_id": "done"})
        assert job is not None
        job.status = JobStatus.SUCCEEDED.value
        db.session.commit()
        assert db.session.query(OutboxJob).count() == 1
    text = client.get("/metrics").get_data(as_text=True)
    assert 'status="succeeded"' not in text
