"""The production guardrails: with PRODUCTION on, SQLite, a missing or short secret key, an http
or loopback base URL, insecure cookies and the sandbox service each stop the start with one line
that says what to set."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from lti_proctor import create_app
from lti_proctor.config import ConfigError
from lti_proctor.production import check_production
from tests.services import close_app_database

REAL_KEY = "te_live_5f3c2a9d"
GOOD_SECRET = "Qm9vdHN0cmFwLXNlY3JldC1mb3ItcHJvZHVjdGlvbi0xMjM0NTY3OA"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LTI_PROCTOR_* setting from the machine running the tests leaks into these apps."""
    for name in list(os.environ):
        if name.startswith("LTI_PROCTOR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ready(pg_url: str, tmp_path: Path) -> dict[str, Any]:
    """Settings a production start accepts."""
    return {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PRODUCTION": True,
        "SQLALCHEMY_DATABASE_URI": pg_url,
        "SECRET_KEY": GOOD_SECRET,
        "BASE_URL": "https://tool.example.edu",
        "TRUSTEXAM_API_KEY": REAL_KEY,
    }


@pytest.fixture
def started() -> Iterator[list[Flask]]:
    apps: list[Flask] = []
    yield apps
    for app in apps:
        close_app_database(app)


def test_production_settings_that_fit_start(ready: dict[str, Any], started: list[Flask]) -> None:
    app = create_app(ready)
    started.append(app)

    assert app.config["SANDBOX_PROCTORING"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is True


REFUSED = {
    "sqlite": ({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.sqlite3"}, "LTI_PROCTOR_DATABASE_URL"),
    "embedded database": ({"SQLALCHEMY_DATABASE_URI": None}, "LTI_PROCTOR_DATABASE_URL"),
    "no secret key": ({"SECRET_KEY": None}, "LTI_PROCTOR_SECRET_KEY"),
    "short secret key": ({"SECRET_KEY": "hunter2-hunter2"}, "LTI_PROCTOR_SECRET_KEY"),
    "http base url": ({"BASE_URL": "http://tool.example.edu"}, "LTI_PROCTOR_BASE_URL"),
    "loopback base url": ({"BASE_URL": "https://127.0.0.1:5000"}, "LTI_PROCTOR_BASE_URL"),
    "localhost base url": ({"BASE_URL": "https://localhost"}, "LTI_PROCTOR_BASE_URL"),
    "ipv6 loopback": ({"BASE_URL": "https://[::1]:8443"}, "LTI_PROCTOR_BASE_URL"),
    "insecure cookies": ({"DEV_INSECURE_COOKIES": True}, "LTI_PROCTOR_DEV_INSECURE_COOKIES"),
    "sandbox proctoring": (
        {"SANDBOX_PROCTORING": True, "TRUSTEXAM_API_KEY": None},
        "SANDBOX_PROCTORING_ALLOW_PRODUCTION",
    ),
}


@pytest.mark.parametrize(("change", "named"), REFUSED.values(), ids=REFUSED.keys())
def test_production_start_is_refused_with_one_line_saying_what_to_set(
    ready: dict[str, Any], change: dict[str, Any], named: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        create_app({**ready, **change})

    message = str(refused.value)
    assert "\n" not in message
    assert named in message and "set" in message
    assert "hunter2" not in message  # a secret is never echoed, not even a bad one
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_production_off_allows_the_development_defaults() -> None:
    check_production({"PRODUCTION": False, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_refusal_through_the_cli_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTI_PROCTOR_")}
    env.update(
        {"LTI_PROCTOR_INSTANCE_PATH": str(tmp_path / "instance"), "LTI_PROCTOR_PRODUCTION": "yes"}
    )
    done = subprocess.run(
        [sys.executable, "-c", "from lti_proctor.__main__ import main; main()", "worker", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: cannot start: LTI_PROCTOR_PRODUCTION is on")
    assert "set LTI_PROCTOR_DATABASE_URL" in line
    assert not (tmp_path / "instance" / "lti_proctor.sqlite3").exists()
