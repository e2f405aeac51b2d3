"""The one place that builds error responses: pages for people, JSON or text for callers.

Every refusal a route answers goes through error_response() (a Reason, a status, a sentence), and
every exception that escapes a view goes through the handlers init_app() installs. Each answer
carries its reason code and a request id; the log line carries the same two, never a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, current_app, render_template, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from lti_proctor.extensions import db
from lti_proctor.i18n import N_
from lti_proctor.lti.errors import LaunchError, RegisterError
from lti_proctor.lti.oidc import LOGIN_PARAMS
from lti_proctor.reasons import Reason
from lti_proctor.web.language import gettext as _
from lti_proctor.web.observability import note_reason
from lti_proctor.web.observability import request_id as current_request_id

log = logging.getLogger(__name__)

Shape = Literal["page", "json", "text"]

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
    "/lti/login": LOGIN_PARAMS,
    "/lti/launch": ("id_token", "state"),
    "/exam/start": ("token",),
    "/exam/retry": ("token",),
}
# Plain HTTP failures in the reader's language (werkzeug's names and descriptions are English):
# status -> (title, what happened and what to do). Other statuses get the generic pair.
HTTP_TEXT: dict[int, tuple[str, str]] = {
    400: (
        N_("Bad request"),
        N_("The tool could not understand this request. Go back and try again."),
    ),
    401: (
        N_("Not signed in"),
        N_("This page needs a launch from your course. Open it again from the course."),
    ),
    403: (
        N_("Access refused"),
        N_("You do not have access to this page. Open it again from your course."),
    ),
    404: (
        N_("Page not found"),
        N_("There is no page at this address. Open the tool from your course instead."),
    ),
    405: (
        N_("Not allowed here"),
        N_("This address does not accept this kind of request. Open the tool from your course."),
    ),
    429: (
        N_("Too many requests"),
        N_("The tool received too many requests from you. Wait a minute and try again."),
    ),
}
GENERIC_TITLE = N_("The tool could not do that")
GENERIC_MESSAGE = N_("The tool could not complete this request. Try again in a moment.")


def wants_text() -> bool:
    """True for webhook and API routes, which never render HTML."""
    return request.path.startswith(("/webhooks/", "/api/")) or request.accept_mimetypes.best == (
        "application/json"
    )


def new_request_id() -> str:
    """The request's id (web/observability binds one per request, from the proxy's X-Request-ID
    when sane): shown to the user and on every log line, to find one in the other."""
    return current_request_id()


def error_response(
    reason: Reason,
    status: int,
    *,
    message: str = "",
    title: str | None = None,
    shape: Shape | None = None,
    template: str = "errors/generic.html",
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """A refusal as a page (HTML), JSON ({"error", "message"}) or text (the code alone).

    shape defaults to JSON for API and webhook routes and to a page otherwise. Pages are
    rendered from template with title, message, code and request_id plus context.
    """
    request_id = str(context.pop("request_id", None) or new_request_id())
    shape = shape or ("json" if wants_text() else "page")
    note_reason(reason.value)  # the launch metrics count outcomes by reason code
    log.info("refused reason=%s status=%s request_id=%s", reason.value, status, request_id)
    if shape == "text":
        body: Any = reason.value + "\n"
        response = current_app.response_class(body, status=status, mimetype="text/plain")
    elif shape == "json":
        response = current_app.make_response(
            ({"error": reason.value, "message": message, "request_id": request_id}, status)
        )
    else:
        html = render_template(
            template,
            title=title or _(GENERIC_TITLE),
            message=message,
            code=reason.value,
            request_id=request_id,
            **context,
        )
        response = current_app.make_response((html, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def course_return_url(return_url: str | None, message: str) -> str | None:
    """The launch's return_url with lti_errormsg, so the LMS can show why (None if unusable)."""
    parts = urlsplit(return_url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    joiner = "&" if parts.query else "?"
    return f"{return_url}{joiner}{urlencode({'lti_errormsg': message})}"


def launch_error_response(exc: LaunchError) -> Response:
    """A refused login or launch: the launch page with what happened and what to do next."""
    request_id = new_request_id()
    log.warning(
        "launch refused reason=%s detail=%s request_id=%s path=%s",
        exc.reason.value,
        exc.detail,
        request_id,
        request.path,
    )
    return error_response(
        exc.reason,
        exc.status,
        message=exc.text.what,
        shape="page",
        template="errors/launch.html",
        error=exc,
        request_id=request_id,
        # The LMS shows lti_errormsg to the same reader: in the page's language too.
        back_url=course_return_url(exc.return_url, _(exc.text.what)),
    )


def init_app(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(LaunchError)
    def launch_error(exc: LaunchError) -> Response:
        """A refused login or launch: a readable page with the reason code and a request id."""
        db.session.rollback()
        return launch_error_response(exc)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        """A body over MAX_CONTENT_LENGTH: refused before it was read into memory."""
        db.session.rollback()
        limit = app.config.get("MAX_CONTENT_LENGTH")
        log.warning("request.too_large path=%s max_bytes=%s", request.path, limit)
        return error_response(
            Reason.REQUEST_TOO_LARGE,
            413,
            title=_("Request too large"),
            message=_(
                "The request body is larger than the tool accepts (%(limit)s bytes).", limit=limit
            ),
        )

    @app.errorhandler(RegisterError)
    def register_error(exc: RegisterError) -> Response:
        """A refused Dynamic Registration: a readable page; nothing was stored."""
        db.session.rollback()
        request_id = new_request_id()
        log.warning(
            "registration refused reason=%s detail=%s request_id=%s",
            exc.reason.value,
            exc.detail,
            request_id,
        )
        return error_response(
            exc.reason,
            exc.status,
            shape="page",
            template="errors/register.html",
            error=exc,
            request_id=request_id,
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def storage_unavailable(exc: Exception):  # type: ignore[no-untyped-def]
        """Database or shared store unreachable: a readable 503 page (or JSON) with a retry."""
        request_id = new_request_id()
        note_reason(Reason.TOOL_UNAVAILABLE.value)
        _rollback_quietly()
        # The type only: with hide_parameters no value is in the text, but the SQL is noise.
        log.error(
            "tool.unavailable request_id=%s path=%s: %s",
            request_id,
            request.path,
            type(exc).__name__,
        )
        if wants_text():
            body = {"error": Reason.TOOL_UNAVAILABLE.value, "request_id": request_id}
            return body, 503, {"Retry-After": "30"}
        fields = _REPOSTABLE.get(request.path) if request.method == "POST" else None
        page = render_template(
            "errors/unavailable.html",
            code=Reason.TOOL_UNAVAILABLE.value,
            request_id=request_id,
            retry_action=request.path if fields is not None else request.full_path,
            retry_form=[(k, request.form[k]) for k in fields or () if k in request.form],
        )
        return page, 503, {"Retry-After": "30", "Cache-Control": "no-store"}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        """A plain HTTP failure (unknown URL, wrong method, too large)."""
        status = exc.code or 500
        title, message = HTTP_TEXT.get(status, (GENERIC_TITLE, GENERIC_MESSAGE))
        return error_response(
            Reason.for_http_status(status), status, title=_(title), message=_(message)
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        """Anything else: roll back, log the traceback, answer 500 without details."""
        request_id = new_request_id()
        _rollback_quietly()
        log.exception("unexpected error request_id=%s", request_id)
        return error_response(
            Reason.INTERNAL,
            500,
            title=_("Something went wrong"),
            message=_(
                "The tool hit an unexpected problem. Try again; if it persists, give your "
                "administrator the request id below."
            ),
            request_id=request_id,
        )


def _rollback_quietly() -> None:
    """Roll the request's transaction back; with the database gone, that may fail too."""
    try:
        db.session.rollback()
    except Exception:  # the connection is dead: nothing of ours is left to undo
        log.debug("rollback failed while handling an error", exc_info=True)
