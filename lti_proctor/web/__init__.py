"""Every route of the tool: one blueprint per file, registered by register_blueprints()."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach every blueprint of the tool to app."""
    from lti_proctor.web import errors

    errors.init_app(app)
    from lti_proctor.web import lti

    app.register_blueprint(lti.bp)
    from lti_proctor.web import wellknown

    app.register_blueprint(wellknown.bp)
    from lti_proctor.web import exam, webhooks

    app.register_blueprint(exam.bp)
    app.register_blueprint(webhooks.bp)
