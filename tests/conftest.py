"""Shared fixtures: the app on SQLite and on PostgreSQL, the shared store, and no real network.

Every test that uses `app` runs twice: on a SQLite file and on the machine's PostgreSQL (with the
Redis shared store, the production pairing). Where PostgreSQL is not reachable the PostgreSQL run
is skipped with a reason that says so.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from lti_proctor import create_app
from tests.constants import PG_URL, REDIS_URL, TOOL_URL
from tests.services import (
    close_app_database,
    migrate,
    pg_available,
    private_pg_schema,
    redis_available,
)

LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL schema private to this test process, migrated once; tests truncate it."""
    with private_pg_schema("lp_test") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each test gets a copy (no migration per test)."""
    path = tmp_path_factory.mktemp("schema") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of one test run: a fresh, migrated SQLite file, or the private PG schema."""
    if request.param == "sqlite":
        database = tmp_path / "tool.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), database)
        return f"sqlite:///{database}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(scope="session")
def first_key_pem() -> str:
    """One tool key for the session: each test app starts with it instead of generating its own
    2048-bit key (the slowest step of create_app); rotation still makes new keys."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii")


@pytest.fixture
def app_config(db_url: str, tmp_path: Path, first_key_pem: str) -> dict[str, Any]:
    """Overrides every test app gets; tests may add to it before asking for `app`."""
    config: dict[str, Any] = {
        "TESTING": True,
        "LTI_FIRST_KEY_PEM": first_key_pem,
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
    close_app_database(application)


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


@pytest.fixture(autouse=True)
def no_secrets_in_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail any test whose log output holds a key, token, access code or secret.

    The tool's loggers are captured from INFO, the level a production deployment logs at.
    """
    caplog.set_level(logging.INFO, logger="lti_proctor")
    yield
    if request.node.get_closest_marker("secrets_in_logs"):
        return  # a test that feeds secrets to a logger on purpose, to check their redaction
    from tests.secret_scan import find_secrets, record_text

    records = caplog.get_records("setup") + caplog.get_records("call")
    hits = find_secrets(record_text(records))
    if hits:
        pytest.fail("secrets in the log output:\n" + "\n".join(hits[:10]), pytrace=False)


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
