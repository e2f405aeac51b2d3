"""The sandbox proctoring policy: on by default only in development without a real key, never
with a real key, and refused in production unless explicitly allowed; create_app enforces it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lti_proctor import create_app
from lti_proctor.config import ConfigError
from lti_proctor.sandbox.policy import SandboxPolicyError, check_sandbox_policy
from tests.services import close_app_database

REAL_KEY = "te_live_5f3c2a9d"
DEMO_KEY = "sandbox-Zq8c1Jf0"


def production_ready(database_url: str) -> dict[str, Any]:
    """Settings a production start accepts (the guardrails of lti_proctor/production.py)."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "k" * 48,
        "BASE_URL": "https://tool.example.edu",
    }


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    return {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'tool.sqlite3'}",
        "SECRET_KEY": "test-secret-key",
    }


@pytest.mark.parametrize(
    ("settings", "sandbox"),
    [
        ({}, True),
        ({"TRUSTEXAM_API_KEY": REAL_KEY}, False),
        ({"PRODUCTION": True}, False),
        ({"TRUSTEXAM_API_KEY": DEMO_KEY, "SANDBOX_PROCTORING": True}, True),
        ({"TRUSTEXAM_API_KEY": REAL_KEY, "SANDBOX_PROCTORING": False}, False),
        (
            {
                "PRODUCTION": True,
                "SANDBOX_PROCTORING": True,
                "SANDBOX_PROCTORING_ALLOW_PRODUCTION": True,
            },
            True,
        ),
    ],
)
def test_app_starts_with_the_sandbox_only_where_allowed(
    base: dict[str, Any], settings: dict[str, Any], sandbox: bool, request: pytest.FixtureRequest
) -> None:
    if settings.get("PRODUCTION"):  # the production guardrails want PostgreSQL, https, a key
        base = {**base, **production_ready(request.getfixturevalue("pg_url"))}
    app = create_app({**base, **settings})

    assert app.config["SANDBOX_PROCTORING"] is sandbox
    close_app_database(app)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"SANDBOX_PROCTORING": True, "TRUSTEXAM_API_KEY": REAL_KEY}, "TRUSTEXAM_API_KEY"),
        (
            {
                "SANDBOX_PROCTORING": True,
                "TRUSTEXAM_API_KEY": DEMO_KEY,
                "TRUSTEXAM_REPORT_API_KEY": REAL_KEY,
            },
            "TRUSTEXAM_REPORT_API_KEY",
        ),
        ({"SANDBOX_PROCTORING": True, "PRODUCTION": True}, "PRODUCTION"),
        (
            {"SANDBOX_PROCTORING": True, "PRODUCTION": True, "TRUSTEXAM_API_KEY": DEMO_KEY},
            "SANDBOX_PROCTORING_ALLOW_PRODUCTION",
        ),
    ],
)
def test_app_refuses_to_start_with_the_sandbox_where_forbidden(
    base: dict[str, Any], settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(SandboxPolicyError) as refused:
        create_app({**base, **settings})

    assert named in str(refused.value)
    assert "\n" not in str(refused.value)
    assert isinstance(refused.value, ConfigError)  # the CLI shows it as one "Error:" line
    assert not (Path(base["INSTANCE_PATH"]).parent / "tool.sqlite3").exists()


def test_refusal_never_shows_the_key() -> None:
    with pytest.raises(SandboxPolicyError) as refused:
        check_sandbox_policy({"SANDBOX_PROCTORING": True, "TRUSTEXAM_API_KEY": REAL_KEY})

    assert REAL_KEY not in str(refused.value)


def test_sandbox_off_is_never_refused() -> None:
    check_sandbox_policy(
        {"SANDBOX_PROCTORING": False, "PRODUCTION": True, "TRUSTEXAM_API_KEY": REAL_KEY}
    )
