"""Which modules hold tables, and creating the schema on first start."""

from __future__ import annotations

import importlib

from flask import Flask

from lti_proctor.extensions import db

# Every module that defines a model; importing them registers their tables with db.metadata.
MODEL_MODULES = (
    "lti_proctor.store",
    "lti_proctor.lti.registrations",
    "lti_proctor.lti.invites",
    "lti_proctor.lti.keys",
    "lti_proctor.identity",
    "lti_proctor.attempts.models",
    "lti_proctor.attempts.reports",
    "lti_proctor.attempts.review",
    "lti_proctor.exam_settings",
    "lti_proctor.jobs.models",
)


def import_models() -> None:
    """Import every model module so its tables are known."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def create_schema(app: Flask) -> None:
    """Create missing tables (idempotent)."""
    import_models()
    with app.app_context():
        db.create_all()
