"""The one place that maps exceptions to responses: HTML pages for people, short text for APIs."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, render_template, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from lti_proctor.extensions import db
from lti_proctor.lti.errors import LaunchError

log = logging.getLogger(__name__)

# The database or the shared store is down (or its pool exhausted): a 503 with a retry, never
# a 500. IntegrityError and DataError are not here: they are bugs or bad input, not outages.
OUTAGES = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)
# Routes whose POST may simply be sent again once storage is back (the Try again button).
_REPOSTABLE = {
    "/lti/login": (
        "iss",
        "login_hint",
        "target_link_uri",
        "lti_message_hint",
        "client_id",
        "lti_deployment_id",
    ),
    "/lti/launch": ("id_token", "state"),
    "/exam/retry": ("token",),
}


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
        request_id = uuid.uuid4().hex[:12]
        db.session.rollback()
        log.warning(
            "launch refused reason=%s detail=%s request_id=%s path=%s",
            exc.reason.value,
            exc.detail,
            request_id,
            request.path,
        )
        page = render_template("errors/launch.html", error=exc, request_id=request_id)
        return page, exc.status

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def storage_unavailable(exc: Exception):  # type: ignore[no-untyped-def]
        """Database or shared store unreachable: a readable 503 page (or JSON) with a retry."""
        request_id = uuid.uuid4().hex[:12]
        _rollback_quietly()
        # The type only: with hide_parameters no value is in the text, but the SQL is noise.
        log.error(
            "tool.unavailable request_id=%s path=%s: %s",
            request_id,
            request.path,
            type(exc).__name__,
        )
        if wants_text():
            body = {"error": "tool.unavailable", "request_id": request_id}
            return body, 503, {"Retry-After": "30"}
        fields = _REPOSTABLE.get(request.path) if request.method == "POST" else None
        page = render_template(
            "errors/unavailable.html",
            code="tool.unavailable",
            request_id=request_id,
            retry_action=request.path if fields is not None else request.full_path,
            retry_form=[(k, request.form[k]) for k in fields or () if k in request.form],
        )
        return page, 503, {"Retry-After": "30", "Cache-Control": "no-store"}

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
                request_id=uuid.uuid4().hex[:12],
            ),
            exc.code or 500,
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        request_id = uuid.uuid4().hex[:12]
        _rollback_quietly()
        log.exception("unexpected error request_id=%s", request_id)
        if wants_text():
            return {"error": "internal", "request_id": request_id}, 500
        return (
            render_template(
                "errors/generic.html",
                title="Something went wrong",
                message="The tool hit an unexpected problem. Try again; if it persists, "
                "give your administrator the request id below.",
                code="internal",
                request_id=request_id,
            ),
            500,
        )


def _rollback_quietly() -> None:
    """Roll the request's transaction back; with the database gone, that may fail too."""
    try:
        db.session.rollback()
    except Exception:  # the connection is dead: nothing of ours is left to undo
        log.debug("rollback failed while handling an error", exc_info=True)
