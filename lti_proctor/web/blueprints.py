"""register_blueprints(): attaches the error handlers and every blueprint of web/ to the app."""

from __future__ import annotations

from flask import Flask

from lti_proctor.web import (
    about,
    deep_link,
    errors,
    exam,
    headers,
    health,
    instructor,
    instructor_settings,
    language,
    lti,
    no_session,
    observability,
    register,
    webhooks,
    wellknown,
)


def register_blueprints(app: Flask) -> None:
    """Attach the error handlers and every blueprint of the tool to app."""
    observability.init_app(app)
    no_session.init_app(app)
    errors.init_app(app)
    headers.init_app(app)
    language.init_app(app)
    for module in (
        lti,
        wellknown,
        exam,
        webhooks,
        instructor,
        instructor_settings,
        about,
        register,
        deep_link,
        health,
    ):
        app.register_blueprint(module.bp)
