"""Per-request observability: the request id (log lines, X-Request-ID header, error pages), one
access line per request, and the launch and webhook metrics recorded at the edge.
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

import lti_proctor.logs as logs
import lti_proctor.metrics as metrics

access_log = logging.getLogger("lti_proctor.access")
REQUEST_ID_HEADER = "X-Request-ID"
LAUNCH_ENDPOINT = "lti.launch"
WEBHOOK_ENDPOINT = "webhooks.trustexam_event"


def request_id() -> str:
    """The current request's id (the one its log lines and error page carry)."""
    return logs.current_request_id()


def note_reason(code: str) -> None:
    """Remember the reason code a refusal showed, for the launch metrics."""
    g.reason_code = code


def _begin() -> None:
    rid = logs.sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
    g.request_id_token = logs.bind_request_id(rid)
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = logs.current_request_id()
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    if request.endpoint == LAUNCH_ENDPOINT:
        metrics.record_launch(
            status=response.status_code, reason=g.get("reason_code"), seconds=seconds
        )
    elif request.endpoint == WEBHOOK_ENDPOINT and request.view_args:
        event = str(request.view_args.get("event", ""))
        metrics.record_webhook(event=event, status=response.status_code, seconds=seconds)
    access_log.info(
        "%s %s %s",
        request.method,
        logs.redact(request.path),
        response.status_code,
        extra={"duration_ms": round(seconds * 1000, 1)},
    )
    return response


def _end(exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.reset_request_id(token)


def init_app(app: Flask) -> None:
    """Install the request hooks, and trust PROXY_FIX_HOPS proxies' X-Forwarded-* headers."""
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_end)
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops > 0:
        # Only then: X-Forwarded-* from a client that reaches us directly would be a lie.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
