"""Every route of the tool: one blueprint per file, registered by register_blueprints()."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach the error handlers and every blueprint of the tool to app."""
    from lti_proctor.web import about, errors, exam, instructor, language, lti, webhooks, wellknown

    errors.init_app(app)
    language.init_app(app)
    for module in (lti, wellknown, exam, webhooks, instructor, about):
        app.register_blueprint(module.bp)
