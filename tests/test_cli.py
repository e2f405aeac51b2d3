from __future__ import annotations

from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from lti_proctor.extensions import db
from lti_proctor.lti import keys
from lti_proctor.lti.keys import ToolKey
from lti_proctor.lti.registrations import Deployment, Platform
from tests.constants import TOOL_URL

MOODLE = "https://moodle.example.edu"
EXPLICIT = [
    "platform", "add",
    "--issuer", "https://lms.example.org",
    "--client-id", "tool-1",
    "--deployment-id", "d1",
    "--deployment-id", "d2",
    "--auth-login-url", "https://lms.example.org/auth",
    "--auth-token-url", "https://lms.example.org/token",
    "--key-set-url", "https://lms.example.org/jwks",
    "--name", "Example LMS",
]  # fmt: skip
MOODLE_PRESET = ["platform", "add", "--preset", "moodle", "--url", MOODLE, "--client-id", "Jx8kQ2"]

Row = tuple[str, str, str, str, str, str, str | None, str | None, str]


def registry(app: Flask) -> list[Row]:
    """Every platform column an admin cares about, joined with each deployment id."""
    with app.app_context():
        stmt = (
            sa.select(
                Platform.name,
                Platform.issuer,
                Platform.client_id,
                Platform.auth_login_url,
                Platform.auth_token_url,
                Platform.key_set_url,
                Platform.auth_audience,
                Platform.family,
                Deployment.deployment_id,
            )
            .join(Deployment)
            .order_by(Platform.id, Deployment.id)
        )
        return [tuple(row) for row in db.session.execute(stmt)]  # type: ignore[misc]


def invoke(runner: FlaskCliRunner, args: Sequence[str], **kwargs: object) -> Result:
    return runner.invoke(args=list(args), **kwargs)  # type: ignore[arg-type]


def assert_one_line_error(result: Result) -> None:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output


def test_platform_add_with_explicit_flags_stores_platform_and_deployments(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = invoke(runner, EXPLICIT)

    assert result.exit_code == 0, result.output
    row = (
        "Example LMS",
        "https://lms.example.org",
        "tool-1",
        "https://lms.example.org/auth",
        "https://lms.example.org/token",
        "https://lms.example.org/jwks",
        None,
        None,
    )
    assert registry(app) == [(*row, "d1"), (*row, "d2")]
    assert "Registered platform" in result.output.splitlines()[-1]


def test_platform_add_prints_what_to_paste_into_the_lms(runner: FlaskCliRunner) -> None:
    output = invoke(runner, EXPLICIT).output

    assert f"{TOOL_URL}/lti/login" in output
    assert f"{TOOL_URL}/lti/launch" in output
    assert f"{TOOL_URL}/.well-known/jwks.json" in output


def test_platform_add_ends_with_one_coloured_line(runner: FlaskCliRunner) -> None:
    result = invoke(runner, EXPLICIT, color=True)
    last = result.output.rstrip("\n").splitlines()[-1]
    assert last.startswith("\x1b[32m") and "Registered platform" in last


def test_platform_add_moodle_preset_fills_the_moodle_endpoints(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"])

    assert result.exit_code == 0, result.output
    assert registry(app) == [
        (
            "moodle.example.edu",
            MOODLE,
            "Jx8kQ2",
            f"{MOODLE}/mod/lti/auth.php",
            f"{MOODLE}/mod/lti/token.php",
            f"{MOODLE}/mod/lti/certs.php",
            None,
            "moodle",
            "3",
        )
    ]


@pytest.mark.parametrize(
    ("env_args", "issuer", "sso"),
    [
        ([], "https://canvas.instructure.com", "https://sso.canvaslms.com"),
        (["--canvas-env", "beta"], "https://canvas.beta.instructure.com", "https://sso.beta.canvaslms.com"),
        (["--canvas-env", "test"], "https://canvas.test.instructure.com", "https://sso.test.canvaslms.com"),
    ],
)  # fmt: skip
def test_platform_add_canvas_preset_fills_the_canvas_endpoints(
    app: Flask, runner: FlaskCliRunner, env_args: list[str], issuer: str, sso: str
) -> None:
    args = ["platform", "add", "--preset", "canvas", "--url", "https://school.instructure.com"]
    client_id = "10000000000042"
    deployment = "42:8865aa05b4b79b64a91a86042e43af5ea8ae79eb"
    result = invoke(
        runner, [*args, *env_args, "--client-id", client_id, "--deployment-id", deployment]
    )

    assert result.exit_code == 0, result.output
    assert registry(app) == [
        (
            "school.instructure.com",
            issuer,
            client_id,
            f"{sso}/api/lti/authorize_redirect",
            "https://school.instructure.com/login/oauth2/token",
            f"{sso}/api/lti/security/jwks",
            None,
            "canvas",
            deployment,
        )
    ]


def test_platform_add_explicit_flags_override_the_preset(
    app: Flask, runner: FlaskCliRunner
) -> None:
    result = invoke(
        runner,
        [
            *MOODLE_PRESET,
            "--deployment-id", "3",
            "--key-set-url", "https://keys.example.edu/certs",
            "--name", "Campus Moodle",
            "--auth-audience", "https://moodle.example.edu/token-aud",
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    (row,) = registry(app)
    assert row[0] == "Campus Moodle"
    assert row[4:7] == (
        f"{MOODLE}/mod/lti/token.php",
        "https://keys.example.edu/certs",
        "https://moodle.example.edu/token-aud",
    )


def test_platform_add_for_a_registered_client_adds_the_new_deployment(
    app: Flask, runner: FlaskCliRunner
) -> None:
    assert invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"]).exit_code == 0

    result = invoke(runner, [*MOODLE_PRESET, "--deployment-id", "4"])

    assert result.exit_code == 0, result.output
    assert [row[-1] for row in registry(app)] == ["3", "4"]
    assert "Added deployments 4" in result.output.splitlines()[-1]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Platform)) == 1


ADD, DEP = ["platform", "add"], "--deployment-id"
NO_KEY_SET = ["--issuer", "https://x.example", "--client-id", "c", DEP, "1"]
NO_KEY_SET += ["--auth-login-url", "https://x.example/a", "--auth-token-url", "https://x.example/t"]
BAD_ADDS = {
    "missing issuer": (
        [a for a in EXPLICIT if a not in ("--issuer", "https://lms.example.org")],
        "missing issuer",
    ),
    "missing client id": (
        [*ADD, "--preset", "moodle", "--url", MOODLE, DEP, "1"],
        "missing client_id",
    ),
    "missing deployment": (MOODLE_PRESET, "missing deployment_id"),
    "missing key set url without preset": ([*ADD, *NO_KEY_SET], "missing key_set_url"),
    "plain http url": (
        [*MOODLE_PRESET, DEP, "9", "--key-set-url", "http://moodle.example.edu/c"],
        "key_set_url 'http://moodle.example.edu/c' is not a valid URL",
    ),
    "malformed url": (
        [*EXPLICIT, "--auth-login-url", "not a url"],
        "auth_login_url 'not a url' is not a valid URL",
    ),
    "http preset url": (
        [*ADD, "--preset", "moodle", "--url", "http://m.example", "--client-id", "c", DEP, "1"],
        "url 'http://m.example' is not a valid URL",
    ),
    "preset without url": (
        [*ADD, "--preset", "canvas", "--client-id", "c", DEP, "1"],
        "needs the site's URL",
    ),
    "url without preset": ([*EXPLICIT, "--url", MOODLE], "go with --preset"),
    "canvas env with moodle": (
        [*MOODLE_PRESET, DEP, "9", "--canvas-env", "beta"],
        "--canvas-env goes with --preset canvas",
    ),
    "duplicate deployment": ([*MOODLE_PRESET, DEP, "3"], "deployment '3' is already registered"),
    "duplicate among new deployments": (
        [*MOODLE_PRESET, DEP, "9", DEP, "3"],
        "deployment '3' is already registered",
    ),
    "deployment repeated": ([*EXPLICIT, DEP, "d1"], "'d1' is given more than once"),
    "registered client with other endpoints": (
        [*MOODLE_PRESET, DEP, "9", "--auth-token-url", "https://elsewhere.example/token"],
        "already registered (id 1) with a different auth_token_url",
    ),
}


@pytest.mark.parametrize(("args", "reason"), BAD_ADDS.values(), ids=BAD_ADDS.keys())
def test_platform_add_bad_input_is_a_one_line_error_and_changes_nothing(
    app: Flask, runner: FlaskCliRunner, args: list[str], reason: str
) -> None:
    assert invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"]).exit_code == 0
    before = registry(app)

    result = invoke(runner, args)

    assert_one_line_error(result)
    assert reason in result.stderr
    assert registry(app) == before


def test_platform_list_prints_a_table_of_platforms_and_deployments(
    runner: FlaskCliRunner,
) -> None:
    invoke(runner, EXPLICIT)
    invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"])

    result = invoke(runner, ["platform", "list"])

    assert result.exit_code == 0
    header, first, second, summary = result.output.splitlines()
    assert header.split() == ["id", "name", "issuer", "client_id", "deployments"]
    assert first.split() == [
        "1",
        "Example",
        "LMS",
        "https://lms.example.org",
        "tool-1",
        "d1,",
        "d2",
    ]
    assert second.split() == ["2", "moodle.example.edu", MOODLE, "Jx8kQ2", "3"]
    assert header.index("issuer") == first.index("https://") == second.index("https://")
    assert summary == "2 platform(s) registered."


def test_platform_list_without_platforms_says_so(runner: FlaskCliRunner) -> None:
    result = invoke(runner, ["platform", "list"])
    assert result.exit_code == 0
    assert result.output == "0 platform(s) registered.\n"


def test_platform_remove_by_id_with_yes_removes_it_and_its_deployments(
    app: Flask, runner: FlaskCliRunner
) -> None:
    invoke(runner, EXPLICIT)
    invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"])

    result = invoke(runner, ["platform", "remove", "1", "--yes"])

    assert result.exit_code == 0, result.output
    assert [row[1] for row in registry(app)] == [MOODLE]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Deployment)) == 1
    assert result.output.splitlines()[-1].startswith("Removed platform 1")


def test_platform_remove_by_issuer_and_client_asks_first(
    app: Flask, runner: FlaskCliRunner
) -> None:
    invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"])
    args = ["platform", "remove", "--issuer", MOODLE, "--client-id", "Jx8kQ2"]

    declined = invoke(runner, args, input="n\n")
    assert declined.exit_code != 0
    assert len(registry(app)) == 1

    accepted = invoke(runner, args, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "Remove platform 1" in accepted.output
    assert registry(app) == []


@pytest.mark.parametrize(
    "args",
    [
        ["platform", "remove", "99", "--yes"],
        ["platform", "remove", "--yes"],
        ["platform", "remove", "--issuer", MOODLE, "--yes"],
        ["platform", "remove", "--issuer", MOODLE, "--client-id", "nope", "--yes"],
        ["platform", "remove", "1", "--issuer", MOODLE, "--client-id", "Jx8kQ2", "--yes"],
    ],
    ids=["unknown id", "nothing named", "issuer only", "unknown client", "id and issuer"],
)
def test_platform_remove_bad_input_is_a_one_line_error_and_changes_nothing(
    app: Flask, runner: FlaskCliRunner, args: list[str]
) -> None:
    invoke(runner, [*MOODLE_PRESET, "--deployment-id", "3"])
    before = registry(app)

    assert_one_line_error(invoke(runner, args))
    assert registry(app) == before


def stored_keys(app: Flask) -> list[tuple[str, str]]:
    with app.app_context():
        return [(k.kid, k.status) for k in keys.find_keys()]


def test_keys_rotate_makes_a_new_current_key_and_keeps_the_old_one_retiring(
    app: Flask, runner: FlaskCliRunner
) -> None:
    ((old_kid, _),) = stored_keys(app)

    result = invoke(runner, ["keys", "rotate"])

    assert result.exit_code == 0, result.output
    (new_kid, new_status), old = stored_keys(app)
    assert (new_status, old) == ("current", (old_kid, "retiring"))
    assert old_kid in result.output
    assert result.output.splitlines()[-1] == f"New current key {new_kid}."
    assert "PRIVATE" not in result.output


def test_keys_rotate_uses_the_configured_grace(app: Flask, runner: FlaskCliRunner) -> None:
    invoke(runner, ["keys", "rotate"])
    with app.app_context():
        old = db.session.execute(
            sa.select(ToolKey).where(ToolKey.status == "retiring")
        ).scalar_one()
        grace = old.expires_at - old.retired_at  # type: ignore[operator]
    assert grace.days == app.config["LTI_KEY_GRACE_DAYS"] == 7


def test_keys_rotate_with_zero_grace_then_prune_drops_the_old_key(
    app: Flask, runner: FlaskCliRunner
) -> None:
    ((old_kid, _),) = stored_keys(app)
    invoke(runner, ["keys", "rotate", "--grace-days", "0"])

    shown = invoke(runner, ["keys", "show"]).output
    assert f"{old_kid}  expired" in shown

    result = invoke(runner, ["keys", "prune"])
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "Dropped 1 expired key(s)."
    assert old_kid not in [kid for kid, _ in stored_keys(app)]


def test_keys_show_lists_kids_and_status_but_no_private_material(
    app: Flask, runner: FlaskCliRunner
) -> None:
    invoke(runner, ["keys", "rotate"])
    (current_kid, _), (retiring_kid, _) = stored_keys(app)

    result = invoke(runner, ["keys", "show"])

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["kid", "status"]
    assert lines[1].split()[:2] == [current_kid, "current"]
    assert lines[2].split()[:2] == [retiring_kid, "retiring"]
    assert lines[-1] == f"2 key(s); current {current_kid}."
    with app.app_context():
        pem = keys.find_keys()[0].private_key_pem
    body = pem.splitlines()[1]
    assert "PRIVATE" not in result.output and body not in result.output
