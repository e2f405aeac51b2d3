from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.lti.platforms import (
    PlatformError,
    add_platform,
    get_platform_by_client,
    list_platforms,
    remove_platform,
    resolve_preset,
)
from lti_proctor.lti.registrations import Deployment, Platform

MOODLE = "https://moodle.example.edu"
REGISTRATION: dict[str, Any] = {
    "issuer": MOODLE,
    "client_id": "Jx8kQ2",
    "deployment_ids": ["3"],
    "auth_login_url": f"{MOODLE}/mod/lti/auth.php",
    "auth_token_url": f"{MOODLE}/mod/lti/token.php",
    "key_set_url": f"{MOODLE}/mod/lti/certs.php",
}


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def registry_rows() -> list[tuple[str, str, str, str | None]]:
    """Every (issuer, client_id, key_set_url, deployment_id) row, as an admin would list them."""
    stmt = (
        sa.select(
            Platform.issuer, Platform.client_id, Platform.key_set_url, Deployment.deployment_id
        )
        .outerjoin(Deployment)
        .order_by(Platform.id, Deployment.id)
    )
    return [tuple(row) for row in db.session.execute(stmt)]  # type: ignore[misc]


def test_add_platform_stores_registration_with_its_deployments(ctx: None) -> None:
    added = add_platform(**{**REGISTRATION, "deployment_ids": ["3", "4"]}, name="Moodle 4.5")
    db.session.commit()

    platform = get_platform_by_client(MOODLE, "Jx8kQ2")
    assert platform is not None and added.created
    assert platform.name == "Moodle 4.5"
    assert platform.auth_token_url == f"{MOODLE}/mod/lti/token.php"
    assert [d.deployment_id for d in platform.deployments] == ["3", "4"]
    assert all(d.active for d in platform.deployments)


def test_add_platform_without_name_uses_the_issuer_host(ctx: None) -> None:
    added = add_platform(**REGISTRATION)
    assert added.platform.name == "moodle.example.edu"


def test_add_platform_strips_surrounding_spaces(ctx: None) -> None:
    add_platform(**{**REGISTRATION, "client_id": "  Jx8kQ2 ", "deployment_ids": [" 3 "]})
    db.session.commit()
    assert registry_rows() == [(MOODLE, "Jx8kQ2", f"{MOODLE}/mod/lti/certs.php", "3")]


def test_add_platform_again_adds_only_the_new_deployments(ctx: None) -> None:
    add_platform(**REGISTRATION)
    db.session.commit()

    added = add_platform(issuer=MOODLE, client_id="Jx8kQ2", deployment_ids=["7"])
    db.session.commit()

    assert not added.created and added.deployment_ids == ("7",)
    assert [row[3] for row in registry_rows()] == ["3", "7"]
    assert len(list_platforms()) == 1


def test_one_issuer_may_register_several_client_ids(ctx: None) -> None:
    add_platform(**REGISTRATION)
    add_platform(**{**REGISTRATION, "client_id": "other"})
    db.session.commit()
    assert [p.client_id for p in list_platforms()] == ["Jx8kQ2", "other"]


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8000", "http://127.0.0.1:8081/moodle", "https://lms.example.org/sub/dir"],
)
def test_add_platform_accepts_https_or_plain_http_on_loopback(ctx: None, url: str) -> None:
    add_platform(
        issuer=url,
        client_id="c",
        deployment_ids=["1"],
        auth_login_url=f"{url}/auth",
        auth_token_url=f"{url}/token",
        key_set_url=f"{url}/jwks",
    )
    db.session.commit()
    assert registry_rows() == [(url, "c", f"{url}/jwks", "1")]


BAD_INPUT = {
    "missing issuer": {"issuer": None},
    "blank client_id": {"client_id": "  "},
    "missing auth_login_url": {"auth_login_url": None},
    "missing auth_token_url": {"auth_token_url": None},
    "missing key_set_url": {"key_set_url": None},
    "no deployment": {"deployment_ids": []},
    "blank deployment": {"deployment_ids": ["3", ""]},
    "deployment given twice": {"deployment_ids": ["3", "3"]},
    "plain http on a public host": {"key_set_url": "http://moodle.example.edu/certs.php"},
    "not a url": {"auth_login_url": "moodle.example.edu/mod/lti/auth.php"},
    "ftp scheme": {"auth_token_url": "ftp://moodle.example.edu/token"},
    "no host": {"key_set_url": "https:///mod/lti/certs.php"},
    "space in url": {"auth_login_url": "https://moodle.example.edu/mod lti/auth.php"},
    "fragment in url": {"issuer": "https://moodle.example.edu/#x"},
    "bad port": {"key_set_url": "https://moodle.example.edu:99999/certs.php"},
    "client_id too long": {"client_id": "c" * 256},
    "deployment too long": {"deployment_ids": ["d" * 256]},
    "unknown family": {"family": "blackboard"},
}


@pytest.mark.parametrize("change", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_add_platform_refuses_bad_input_and_changes_nothing(
    ctx: None, change: dict[str, Any]
) -> None:
    with pytest.raises(PlatformError) as excinfo:
        add_platform(**{**REGISTRATION, **change})

    assert "\n" not in str(excinfo.value)
    db.session.commit()  # even a caller that commits after the error stores nothing
    assert registry_rows() == []


EXISTING_CONFLICTS = {
    "same deployment again": {"deployment_ids": ["3"]},
    "one new one old deployment": {"deployment_ids": ["9", "3"]},
    "different key_set_url": {
        "deployment_ids": ["9"],
        "key_set_url": "https://moodle.example.edu/other/certs.php",
    },
    "different auth_audience": {"deployment_ids": ["9"], "auth_audience": "https://aud.example"},
}


@pytest.mark.parametrize("change", EXISTING_CONFLICTS.values(), ids=EXISTING_CONFLICTS.keys())
def test_add_platform_refuses_duplicates_of_a_registration_and_changes_nothing(
    ctx: None, change: dict[str, Any]
) -> None:
    add_platform(**REGISTRATION)
    db.session.commit()
    before = registry_rows()

    with pytest.raises(PlatformError, match="already registered") as excinfo:
        add_platform(**{**REGISTRATION, **change})

    assert "\n" not in str(excinfo.value)
    db.session.commit()
    assert registry_rows() == before


def test_remove_platform_removes_its_deployments(ctx: None) -> None:
    add_platform(**{**REGISTRATION, "deployment_ids": ["3", "4"]})
    keep = add_platform(**{**REGISTRATION, "client_id": "keep"}).platform
    db.session.commit()
    gone = get_platform_by_client(MOODLE, "Jx8kQ2")
    assert gone is not None

    remove_platform(gone)
    db.session.commit()

    assert [p.id for p in list_platforms()] == [keep.id]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Deployment)) == 1


@pytest.mark.parametrize("url", ["https://moodle.example.edu", "https://moodle.example.edu/"])
def test_moodle_preset_uses_wwwroot_as_issuer(url: str) -> None:
    fields = resolve_preset("moodle", url=url)
    assert fields.issuer == "https://moodle.example.edu"
    assert fields.auth_login_url == "https://moodle.example.edu/mod/lti/auth.php"
    assert fields.auth_token_url == "https://moodle.example.edu/mod/lti/token.php"
    assert fields.key_set_url == "https://moodle.example.edu/mod/lti/certs.php"
    assert fields.family == "moodle"


def test_moodle_preset_keeps_a_site_under_a_path() -> None:
    fields = resolve_preset("moodle", url="https://example.edu/moodle")
    assert fields.issuer == "https://example.edu/moodle"
    assert fields.key_set_url == "https://example.edu/moodle/mod/lti/certs.php"


@pytest.mark.parametrize(
    ("env", "issuer", "sso"),
    [
        ("prod", "https://canvas.instructure.com", "https://sso.canvaslms.com"),
        ("beta", "https://canvas.beta.instructure.com", "https://sso.beta.canvaslms.com"),
        ("test", "https://canvas.test.instructure.com", "https://sso.test.canvaslms.com"),
    ],
)
def test_canvas_preset_fills_issuer_sso_endpoints_and_school_token_url(
    env: str, issuer: str, sso: str
) -> None:
    fields = resolve_preset(
        "canvas", url="https://school.instructure.com/courses/1", canvas_env=env
    )
    assert fields.issuer == issuer
    assert fields.auth_login_url == f"{sso}/api/lti/authorize_redirect"
    assert fields.key_set_url == f"{sso}/api/lti/security/jwks"
    assert fields.auth_token_url == "https://school.instructure.com/login/oauth2/token"
    assert (fields.name, fields.family) == ("school.instructure.com", "canvas")


@pytest.mark.parametrize(
    ("preset", "url", "canvas_env"),
    [
        ("blackboard", "https://bb.example.edu", "prod"),
        ("moodle", None, "prod"),
        ("canvas", " ", "prod"),
        ("canvas", "https://school.instructure.com", "staging"),
        ("moodle", "http://moodle.example.edu", "prod"),
        ("moodle", "https://moodle.example.edu/?lang=en", "prod"),
    ],
)
def test_resolve_preset_refuses_bad_input(preset: str, url: str | None, canvas_env: str) -> None:
    with pytest.raises(PlatformError) as excinfo:
        resolve_preset(preset, url=url, canvas_env=canvas_env)
    assert "\n" not in str(excinfo.value)
