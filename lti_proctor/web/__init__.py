"""Every route of the tool: one blueprint per file, registered by register_blueprints()."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach the error handlers and every blueprint of the tool to app."""
    from lti_proctor.web import (
        errors,
        exam,
        health,
        instructor,
        lti,
        observability,
        webhooks,
        wellknown,
    )

    observability.init_app(app)
    errors.init_app(app)
    for module in (lti, wellknown, exam, webhooks, instructor, health):
        app.register_blueprint(module.bp)
