"""Plain factory functions for test rows; each takes overrides and commits (tests are the edge)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lti_proctor.extensions import db
from lti_proctor.lti.registrations import Deployment, Platform

MOODLE_URL = "https://moodle.example.edu"


def platform_values(family: str = "moodle", url: str = MOODLE_URL) -> dict[str, Any]:
    """Registration columns shaped like a real Moodle or Canvas (see lti-reference.md)."""
    if family == "canvas":
        return {
            "name": "Canvas (test)",
            "family": "canvas",
            "issuer": "https://canvas.instructure.com",
            "client_id": "10000000000001",
            "auth_login_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
            "auth_token_url": f"{url}/login/oauth2/token",
            "key_set_url": "https://sso.canvaslms.com/api/lti/security/jwks",
        }
    return {
        "name": "Moodle (test)",
        "family": "moodle",
        "issuer": url,
        "client_id": "qJFGPTxkK5WNQyx",
        "auth_login_url": f"{url}/mod/lti/auth.php",
        "auth_token_url": f"{url}/mod/lti/token.php",
        "key_set_url": f"{url}/mod/lti/certs.php",
    }


def make_platform(
    *,
    family: str = "moodle",
    deployments: Iterable[str] = ("1",),
    default_profile: str | None = None,
    **overrides: Any,
) -> Platform:
    """Add a registration shaped like a real Moodle (at the `issuer` override when given: a
    Moodle's issuer is its URL) or Canvas, with its active deployments; commits."""
    url = overrides.get("issuer", MOODLE_URL) if family == "moodle" else MOODLE_URL
    values = platform_values(family, url)
    values.update(overrides)
    platform = Platform(**values)
    db.session.add(platform)
    db.session.flush()
    for deployment_id in deployments:
        make_deployment(platform, deployment_id, default_profile=default_profile, commit=False)
    db.session.commit()
    return platform


def make_deployment(
    platform: Platform,
    deployment_id: str = "1",
    *,
    active: bool = True,
    commit: bool = True,
    **overrides: Any,
) -> Deployment:
    """Add a deployment id to a registration."""
    deployment = Deployment(
        platform_id=platform.id, deployment_id=deployment_id, active=active, **overrides
    )
    db.session.add(deployment)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return deployment


PLATFORM_FIELDS = (
    "name",
    "family",
    "issuer",
    "client_id",
    "auth_login_url",
    "auth_token_url",
    "key_set_url",
    "auth_audience",
)


def register_described(description: dict[str, str | None]) -> Platform:
    """Register a platform from a describe() dict (the sandbox LMS's), with its deployment."""
    fields = {name: description[name] for name in PLATFORM_FIELDS if name in description}
    return make_platform(deployments=[str(description["deployment_id"])], **fields)
