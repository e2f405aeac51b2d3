"""Exam settings kept in the tool, made for a LaunchBuilder's course, and the link that names them.

What an instructor's deep linking would have stored (tests/web/test_deep_link.py drives the real
flow); tests of the exam page start from here so their links carry only `custom: {"exam": ref}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from lti_proctor.exam_settings import Owner, SettingsInput, create_settings
from lti_proctor.extensions import db
from lti_proctor.lti import claims as c
from lti_proctor.lti.registrations import Deployment, Platform
from tests.launches import LaunchBuilder


def course_owner(launcher: LaunchBuilder, context_id: str | None = None) -> Owner:
    """The owner (platform, deployment, course) of the launcher's fixture course."""
    platform = db.session.scalars(
        select(Platform).where(
            Platform.issuer == launcher.issuer, Platform.client_id == launcher.client_id
        )
    ).one()
    context = context_id or str(launcher.fixture["claims"][c.CONTEXT]["id"])
    return Owner(platform.id, launcher.deployment_id, context)


def deployment_default(launcher: LaunchBuilder) -> str | None:
    """The deployment's default profile, if an admin set one."""
    deployment = db.session.scalars(
        select(Deployment).where(Deployment.deployment_id == launcher.deployment_id)
    ).first()
    return deployment.default_profile if deployment is not None else None


def make_exam(
    launcher: LaunchBuilder,
    *,
    title: str = "Midterm",
    exam_url: str | None = None,
    access_code: str | None = None,
    profile: str | None = None,
    max_attempts: int = 1,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    review_threshold: float | None = None,
    context_id: str | None = None,
) -> str:
    """Store exam settings in the launcher's course (committed); returns the exam reference."""
    with launcher.app.app_context():
        values = SettingsInput(
            title=title,
            exam_url=exam_url,
            access_code=access_code,
            profile=profile or deployment_default(launcher) or "standard",
            max_attempts=max_attempts,
            opens_at=opens_at,
            closes_at=closes_at,
            review_threshold=review_threshold,
        )
        row = create_settings(course_owner(launcher, context_id), values, created_by="teacher")
        db.session.commit()
        return row.ref


def exam_custom(launcher: LaunchBuilder, custom: dict[str, Any]) -> dict[str, str]:
    """Legacy-style custom parameters turned into settings in the tool: {"exam": ref}."""
    ref = make_exam(
        launcher,
        exam_url=custom.get("exam_url"),
        access_code=custom.get("access_code"),
        profile=custom.get("proctoring_profile"),
        max_attempts=int(custom.get("max_attempts") or 1),
    )
    return {"exam": ref}
