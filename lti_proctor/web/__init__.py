"""Every route of the tool: one blueprint per file, registered by register_blueprints()."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach the error handlers and every blueprint of the tool to app."""
    from lti_proctor.web import errors, exam, headers, instructor, lti, webhooks, wellknown

    errors.init_app(app)
    headers.init_app(app)
    for module in (lti, wellknown, exam, webhooks, instructor):
        app.register_blueprint(module.bp)
