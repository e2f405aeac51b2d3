"""The registration cache: launches read registrations from it, and a change made anywhere (the
CLI here, another process through the shared store) is seen at once, never after the TTL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from flask import Flask, render_template
from flask.testing import FlaskClient
from sqlalchemy import event

from lti_proctor import create_app
from lti_proctor.extensions import db
from lti_proctor.lti.registration_cache import SharedVersionedCache
from lti_proctor.lti.registrations import Platform, issuer_registrations
from lti_proctor.web import lti as web_lti
from tests.launches import LaunchBuilder


@pytest.fixture
def builder(app: Flask, client: FlaskClient, http: responses.RequestsMock) -> LaunchBuilder:
    return LaunchBuilder(app, client, http)


@pytest.fixture(autouse=True)
def context_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validated launch shows its context page (the LTI layer alone, as in test_launch)."""
    monkeypatch.setattr(
        web_lti, "_respond_to_launch", lambda ctx: render_template("lti/launched.html", ctx=ctx)
    )


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL the app's engine runs while the test runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_second_launch_reads_no_registration_from_the_database(
    builder: LaunchBuilder, statements: list[str]
) -> None:
    assert builder.launch().status_code == 200
    statements.clear()

    assert builder.launch().status_code == 200

    assert not [s for s in statements if "lti_platform" in s or "lti_deployment" in s]


def test_a_deployment_removed_by_the_cli_stops_launches_at_once(
    app: Flask, builder: LaunchBuilder
) -> None:
    assert builder.launch().status_code == 200  # the cache now holds the deployment
    with app.app_context():
        platform_id = db.session.query(Platform.id).scalar()
    result = app.test_cli_runner().invoke(
        args=["platform", "remove-deployment", str(platform_id), builder.deployment_id, "--yes"]
    )
    assert result.exit_code == 0, result.output

    resp = builder.launch()

    assert resp.status_code == 400
    assert "launch.deployment_unknown" in resp.get_data(as_text=True)


def test_another_process_sees_a_change_through_the_shared_store(
    app: Flask, app_config: dict[str, Any], builder: LaunchBuilder
) -> None:
    # A second app on the same database and store stands for another gunicorn worker.
    other = create_app({**app_config, "LTI_REGISTRATION_CACHE_CHECK_S": 0})
    with other.app_context():
        assert issuer_registrations(builder.issuer).deployments  # cached there
    with app.app_context():
        db.session.query(Platform).delete()
        db.session.commit()

    with other.app_context():
        assert issuer_registrations(builder.issuer).platforms == ()
        db.session.remove()
        db.engine.dispose()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class DictStore:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str, ttl_s: float) -> None:
        self.values[key] = value


def make_cache(store: DictStore, clock: FakeClock, *, ttl_s: float = 30) -> Any:
    return SharedVersionedCache(
        version_key="v", store=lambda: store, ttl_s=ttl_s, check_s=1, clock=clock
    )


def test_cache_keeps_a_value_for_its_ttl_then_loads_again() -> None:
    clock, loads = FakeClock(), []
    cache = make_cache(DictStore(), clock)

    def load() -> int:
        loads.append(clock.now)
        return len(loads)

    assert [cache.get_or_load("k", load) for _ in range(3)] == [1, 1, 1]
    clock.now = 31
    assert cache.get_or_load("k", load) == 2


def test_cache_drops_its_values_when_another_process_invalidates() -> None:
    store, clock = DictStore(), FakeClock()
    here, there = make_cache(store, clock), make_cache(store, clock)
    assert here.get_or_load("k", lambda: "old") == "old"

    there.invalidate()
    assert here.get_or_load("k", lambda: "new") == "old"  # checked at most once a second
    clock.now = 1.5

    assert here.get_or_load("k", lambda: "new") == "new"


def test_cache_with_a_ttl_of_zero_always_loads() -> None:
    cache = make_cache(DictStore(), FakeClock(), ttl_s=0)
    assert [cache.get_or_load("k", lambda n=n: n) for n in range(2)] == [0, 1]
