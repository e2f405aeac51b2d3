"""Shared fixtures: the app on SQLite and on PostgreSQL, the shared store, and no real network.

Every test that uses `app` runs twice: on a SQLite file and on the machine's PostgreSQL (with the
Redis shared store, the production pairing). Where PostgreSQL is not reachable the PostgreSQL run
is skipped with a reason that says so.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import responses
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from lti_proctor import create_app
from lti_proctor.extensions import db

PG_URL = os.environ.get("LTI_PROCTOR_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LTI_PROCTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOOL_URL = "https://tool.example.com"
LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/")


@cache
def pg_available() -> bool:
    """True when the test PostgreSQL answers within two seconds."""
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception:
        return False
    return True


@cache
def redis_available() -> bool:
    """True when the test Redis answers within two seconds."""
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


PG_SKIP_REASON = f"PostgreSQL not reachable at {PG_URL}: PostgreSQL run skipped"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema private to this test process."""
    if not pg_available():
        pytest.skip(PG_SKIP_REASON)
    schema = f"lp_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of one test run: a fresh SQLite file, or the private PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tool.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def app_config(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Overrides every test app gets; tests may add to it before asking for `app`."""
    config: dict[str, Any] = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": "test-secret-key",
        "BASE_URL": TOOL_URL,
        "PROCTOR_TIMEOUT_S": 2,
        "OUTBOX_WORKER_NICE": 0,  # `worker` commands run in the test process: keep its priority
    }
    if db_url.startswith("postgresql") and redis_available():
        config["REDIS_URL"] = REDIS_URL
        config["STORE_PREFIX"] = f"lp-test:{uuid.uuid4().hex}:"
    return config


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    """The tool, on a clean database."""
    application = create_app(app_config)
    yield application
    store = application.extensions["lti_proctor_store"]
    if hasattr(store, "dispose"):
        store.dispose()
    proctoring_client = application.extensions.pop("lti_proctor_client", None)
    if proctoring_client is not None:
        proctoring_client.close()  # the app's kept-alive connections end with the app
    with application.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser-like test client on the tool's https origin."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """Runs lti-proctor commands against the test app."""
    return app.test_cli_runner()


@pytest.fixture(autouse=True)
def http() -> Iterator[responses.RequestsMock]:
    """Every outbound requests call must match a registered fake; loopback servers pass through."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(LOOPBACK)
        yield mock


@pytest.fixture
def lti_platform(app: Flask, client: FlaskClient, http: responses.RequestsMock) -> Any:
    """A registered Moodle-shaped platform serving its JWKS through `http`; mints real launches
    through the test client (tests/launches.py LaunchBuilder: .launch(), .login(), .claims())."""
    from tests.launches import LaunchBuilder

    return LaunchBuilder(app, client, http)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly whether the PostgreSQL half of the suite ran."""
    postgres_runs = [
        report
        for kind in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(kind, [])
        if "postgresql" in getattr(report, "nodeid", "").partition("[")[2]
        and report.when in ("call", "setup")
    ]
    if not postgres_runs:
        return
    if pg_available():
        terminalreporter.write_line(f"PostgreSQL run: done against {PG_URL}", green=True)
    else:
        terminalreporter.write_line(
            f"PostgreSQL run SKIPPED: not reachable at {PG_URL}", yellow=True, bold=True
        )
