"""The one place that maps exceptions to responses: HTML pages for people, short text for APIs."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

from lti_proctor.extensions import db
from lti_proctor.lti.errors import LaunchError
from lti_proctor.web.observability import note_reason, request_id

log = logging.getLogger(__name__)


def wants_text() -> bool:
    """True for webhook and API routes, which never render HTML."""
    return request.path.startswith(("/webhooks/", "/api/")) or request.accept_mimetypes.best == (
        "application/json"
    )


def init_app(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(LaunchError)
    def launch_error(exc: LaunchError):  # type: ignore[no-untyped-def]
        """A refused login or launch: a readable page with the reason code and a request id."""
        note_reason(exc.reason.value)
        db.session.rollback()
        log.warning(
            "launch refused reason=%s detail=%s request_id=%s path=%s",
            exc.reason.value,
            exc.detail,
            request_id(),
            request.path,
        )
        page = render_template("errors/launch.html", error=exc, request_id=request_id())
        return page, exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if wants_text():
            return {"error": exc.name.lower().replace(" ", "_")}, exc.code or 500
        return (
            render_template(
                "errors/generic.html",
                title=exc.name,
                message=exc.description,
                code=f"http.{exc.code}",
                request_id=request_id(),
            ),
            exc.code or 500,
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        db.session.rollback()
        log.exception("unexpected error request_id=%s", request_id())
        if wants_text():
            return {"error": "internal", "request_id": request_id()}, 500
        return (
            render_template(
                "errors/generic.html",
                title="Something went wrong",
                message="The tool hit an unexpected problem. Try again; if it persists, "
                "give your administrator the request id below.",
                code="internal",
                request_id=request_id(),
            ),
            500,
        )
