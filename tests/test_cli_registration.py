"""The registration commands: platform invite / invites / add-deployment / remove-deployment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from lti_proctor.cli_registration import base_url_warnings
from lti_proctor.extensions import db
from lti_proctor.lti import invites
from lti_proctor.lti.registrations import Deployment
from tests.constants import TOOL_URL
from tests.factories import make_platform


def run(runner, *args, input=None):
    return runner.invoke(args=list(args), input=input)


def invite_url(result):
    return result.output.strip().splitlines()[-1]


def test_invite_prints_the_registration_url_as_its_last_line(app, runner):
    result = run(runner, "platform", "invite", "--name", "Example University", "--expires", "2d")
    assert result.exit_code == 0, result.output
    url = invite_url(result)
    assert url.startswith(f"{TOOL_URL}/lti/register?invite=")
    token = parse_qs(urlsplit(url).query)["invite"][0]
    with app.app_context():
        invite = invites.get_open_invite(token, now=datetime.now(UTC))
        assert invite is not None and invite.name == "Example University"
        left = invites._aware(invite.expires_at) - datetime.now(UTC)
        assert timedelta(days=1, hours=23) < left <= timedelta(days=2)
    assert "Warning" not in result.output  # https public BASE_URL


@pytest.mark.parametrize("expires", ["0d", "soon", "1y", "200d"])
def test_invite_with_a_bad_expiry_is_refused_and_creates_nothing(app, runner, expires):
    result = run(runner, "platform", "invite", "--expires", expires)
    assert result.exit_code != 0
    assert "expiry" in result.output
    with app.app_context():
        assert invites.find_open_invites(now=datetime.now(UTC)) == []


def test_invites_lists_open_ones_and_revoke_closes_one(app, runner):
    first = invite_url(run(runner, "platform", "invite", "--name", "first"))
    run(runner, "platform", "invite", "--name", "second", "--no-learn-deployments")
    listed = run(runner, "platform", "invites")
    assert "first" in listed.output and "second" in listed.output
    assert "2 open invite(s)" in listed.output
    revoked = run(runner, "platform", "invite", "--revoke", first)
    assert revoked.exit_code == 0 and "Revoked invite" in revoked.output
    after = run(runner, "platform", "invites").output
    assert "first" not in after and "1 open invite(s)" in after
    again = run(runner, "platform", "invite", "--revoke", first)
    assert again.exit_code != 0 and "already revoked" in again.output


def test_revoke_unknown_token_is_a_one_line_error(runner):
    result = run(runner, "platform", "invite", "--revoke", "not-a-token")
    assert result.exit_code != 0
    assert "no invite with that token or id" in result.output


def test_add_and_remove_deployment_by_hand(app, runner):
    with app.app_context():
        platform_id = make_platform(deployments=["1"]).id
    added = run(runner, "platform", "add-deployment", str(platform_id), "7")
    assert added.exit_code == 0, added.output
    duplicate = run(runner, "platform", "add-deployment", str(platform_id), "7")
    assert duplicate.exit_code != 0 and "already registered" in duplicate.output
    removed = run(runner, "platform", "remove-deployment", str(platform_id), "1", "--yes")
    assert removed.exit_code == 0, removed.output
    with app.app_context():
        assert [d.deployment_id for d in db.session.scalars(select(Deployment))] == ["7"]
    unknown = run(runner, "platform", "remove-deployment", str(platform_id), "1", "--yes")
    assert unknown.exit_code != 0 and "not registered" in unknown.output
    missing = run(runner, "platform", "add-deployment", "999", "7")
    assert missing.exit_code != 0 and "no platform registered with id 999" in missing.output


def test_remove_deployment_asks_first(app, runner):
    with app.app_context():
        platform_id = make_platform(deployments=["1"]).id
    result = run(runner, "platform", "remove-deployment", str(platform_id), "1", input="n\n")
    assert result.exit_code != 0
    with app.app_context():
        assert db.session.scalars(select(Deployment)).one().deployment_id == "1"


def test_platform_list_shows_learned_deployments(app, runner):
    with app.app_context():
        platform = make_platform(family="canvas", deployments=[], learn_deployments=True)
        db.session.add(
            Deployment(platform_id=platform.id, deployment_id="7:abc", learned_at=datetime.now(UTC))
        )
        db.session.commit()
    output = run(runner, "platform", "list").output
    assert "7:abc (learned at first launch)" in output
    assert "new ones learned at first launch" in output


def test_add_canvas_preset_prints_the_canvas_configuration_url(runner):
    result = run(
        runner, "platform", "add", "--preset", "canvas", "--url", "https://school.instructure.com",
        "--client-id", "10000000000001", "--deployment-id", "1:abc",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{TOOL_URL}/lti/config/canvas.json" in result.output


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:5000", ["loopback", "not https"]),
        ("https://localhost:8443", ["loopback"]),
        ("http://tool.example.edu", ["not https"]),
        ("https://tool.example.edu", []),
    ],
)
def test_base_url_warnings(base_url, expected):
    warnings = base_url_warnings(base_url)
    assert len(warnings) == len(expected)
    for warning, word in zip(warnings, expected, strict=True):
        assert word in warning


def test_invite_with_default_base_url_warns(app, runner):
    app.config["BASE_URL"] = "http://127.0.0.1:5000"
    result = run(runner, "platform", "invite")
    assert result.exit_code == 0
    assert "Warning: BASE_URL is http://127.0.0.1:5000, a loopback address" in result.output
    assert invite_url(result).startswith("http://127.0.0.1:5000/lti/register?invite=")
