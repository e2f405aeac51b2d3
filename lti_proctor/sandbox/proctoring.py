"""Sandbox proctoring service: a Flask stand-in for TrustExam that speaks the same HTTP contract.

Session upsert (/api/external-session/assignment.json), AI report (/report-api/v1/...), the JS SDK
(/extension/app.js) and the endpoints that SDK calls (/sdk/session/...), which deliver the
start/finish webhooks the way trustexam-api.md §4.5 assumes. State lives in this process only
(proctoring_state.py): a single-process development aid, never a fallback in production.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import requests
from flask import Flask, Response, abort, current_app, jsonify, render_template, request

from lti_proctor.sandbox.proctoring_state import (
    Json,
    SandboxConflictError,
    SandboxSession,
    SandboxState,
    WebhookCall,
    build_report,
    find_session,
    finish_attempt,
    mapping,
    record_action,
    report_is_ready,
    report_url,
    sdk_view,
    start_attempt,
    upsert_record,
    validate_upsert,
    webhook_call,
)

log = logging.getLogger(__name__)

STATE_KEY = "sandbox_proctoring"
BASE_URL_KEY = "SANDBOX_PROCTORING_BASE_URL"
SDK_FILE = Path(__file__).resolve().parent / "static" / "proctoring" / "sdk.js"
BASE_PLACEHOLDER = '"__SANDBOX_BASE_URL__"'
INVALID = "The given data was invalid."
TOKEN_HEADER = "X-Proctoring-Token"  # the SDK sends external_session.token here


def create_sandbox_proctoring(
    *,
    base_url: str,
    api_key: str,
    report_api_key: str | None = None,
    report_delay_s: float = 0,
    max_attempts: int = 3,
    allowed_origins: Iterable[str] | None = None,
    webhook_timeout_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> Flask:
    """Build the sandbox service. base_url is its public URL; it may be set later in app.config.

    allowed_origins limits which pages may call the SDK endpoints (None: any origin, for dev).
    """
    app = Flask(__name__, template_folder="templates", static_folder=None)
    app.config[BASE_URL_KEY] = base_url.rstrip("/")
    app.extensions[STATE_KEY] = SandboxState(
        api_key=api_key,
        report_api_key=report_api_key or api_key,
        report_delay_s=report_delay_s,
        max_attempts=max_attempts,
        webhook_timeout_s=webhook_timeout_s,
        clock=clock,
        allowed_origins=frozenset(allowed_origins) if allowed_origins is not None else None,
    )
    _register_routes(app)
    return app


def get_state(app: Flask) -> SandboxState:
    """The sandbox's in-process state (for the demo and tests)."""
    state: SandboxState = app.extensions[STATE_KEY]
    return state


def _state() -> SandboxState:
    state: SandboxState = current_app.extensions[STATE_KEY]
    return state


def _base() -> str:
    return str(current_app.config.get(BASE_URL_KEY) or request.host_url).rstrip("/")


def _error(status: int, message: str, errors: Mapping[str, list[str]] | None = None) -> Response:
    body: Json = {"message": message}
    if errors:
        body["errors"] = dict(errors)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _authorized(expected: str) -> bool:
    """The service's auth: X-Authorization header or api_token query (both are confirmed)."""
    presented = request.headers.get("X-Authorization") or request.args.get("api_token") or ""
    return hmac.compare_digest(presented.encode(), expected.encode())


# -- service API ---------------------------------------------------------------------------------


def upsert_session() -> Response:
    """POST /api/external-session/assignment.json: create or refresh one external session."""
    state = _state()
    if not _authorized(state.api_key):
        return _error(401, "Unauthenticated.")
    body = request.get_json(silent=True)
    errors = validate_upsert(body)
    if errors:
        return _error(422, INVALID, errors)
    if state.upsert_delay_s > 0:
        time.sleep(state.upsert_delay_s)  # a slow service; the lock is not held meanwhile
    with state.lock:
        session = upsert_record(state, mapping(body))
    return jsonify(
        {
            "external_session": {"token": session.token, "id": session.id},
            "report_url": report_url(session, _base()),
            "session_url": f"{_base()}/session/{session.id}",
        }
    )


def get_report(attempt_id: str) -> Response:
    """GET /report-api/v1/actions/reports/ai/<id>: 404 until finished and the delay has passed."""
    state = _state()
    if not _authorized(state.report_api_key):
        return _error(401, "Unauthenticated.")
    with state.lock:
        session = state.by_attempt.get(int(attempt_id)) if attempt_id.isdigit() else None
        if session is None or not report_is_ready(state, session):
            return _error(404, "The report is not ready.")
        return jsonify(build_report(session))


# -- SDK endpoints -------------------------------------------------------------------------------


def _session_or_404(state: SandboxState) -> SandboxSession:
    """The session named by the SDK's token header (kept out of URLs, so out of access logs)."""
    session = state.by_token.get(request.headers.get(TOKEN_HEADER, ""))
    if session is None:
        abort(_error(404, "Unknown or expired session token."))
    return session


def sdk_session() -> Response:
    """GET /sdk/session: what the SDK needs to configure itself."""
    state = _state()
    with state.lock:
        return jsonify(sdk_view(state, _session_or_404(state)))


def sdk_start() -> Response:
    """POST /sdk/session/start: open the attempt and deliver the start webhook."""
    return _drive("start")


def sdk_finish() -> Response:
    """POST /sdk/session/finish: close the attempt and deliver the finish webhook."""
    return _drive("finish")


def _drive(event: str) -> Response:
    """Move the attempt, then deliver the webhook outside the lock; a repeat sends nothing."""
    state = _state()
    step = start_attempt if event == "start" else finish_attempt
    with state.lock:
        session = _session_or_404(state)
        try:
            fresh = step(state, session)
        except SandboxConflictError as exc:
            return _error(409, str(exc))
        call = webhook_call(session, event, base_url=_base()) if fresh else None
        view = sdk_view(state, session)
    # Delivered before answering, so the tool has the webhook when the SDK's promise resolves.
    delivered = deliver_webhook(session, call, state.webhook_timeout_s) if call else None
    return jsonify({**view, "webhook_delivered": delivered})


def sdk_action() -> Response:
    """POST /sdk/session/action: record one tracked event (a violation if is_warning)."""
    state = _state()
    data = mapping(request.get_json(silent=True))
    kind = data.get("action_type") or data.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= 64:
        return _error(422, INVALID, {"action_type": ["The action_type field is required."]})
    description = data.get("description")
    with state.lock:
        session = _session_or_404(state)
        if session.status != "active":
            return _error(409, "This proctoring attempt is not in progress.")
        action = record_action(
            session,
            kind,
            description[:200] if isinstance(description, str) else None,
            warning=data.get("is_warning") in (1, True, "1"),
        )
    return jsonify(action)


def deliver_webhook(session: SandboxSession, call: WebhookCall, timeout_s: float) -> bool:
    """POST one webhook as JSON; a failure is logged and recorded, never raised to the SDK."""
    url, body, headers = call
    record: Json = {"event": body["event"], "url": url.split("?", 1)[0]}  # no secret in logs
    try:
        resp = requests.post(url, data=json.dumps(body), headers=headers, timeout=timeout_s)
        record["status"] = resp.status_code
    except requests.RequestException as exc:
        record["error"] = type(exc).__name__
    ok = 200 <= int(record.get("status") or 0) < 300
    if not ok:
        detail = record.get("error") or record.get("status")
        log.warning("sandbox webhook %s to %s failed: %s", body["event"], record["url"], detail)
    session.deliveries.append(record)
    return ok


# -- pages, SDK script, CORS ---------------------------------------------------------------------


def sdk_script() -> Response:
    """GET /extension/app.js: the sandbox SDK, with this service's base URL filled in."""
    source = SDK_FILE.read_text(encoding="utf-8").replace(BASE_PLACEHOLDER, json.dumps(_base()))
    resp = Response(source, mimetype="application/javascript")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def report_page(session_id: int) -> str:
    """GET /report/session/<id>: the human report page that report_url points at."""
    state = _state()
    with state.lock:
        session = find_session(state, session_id)
        if session is None:
            abort(404)
        report = build_report(session) if session.status == "closed" else None
        return render_template("sandbox_proctoring/report.html", session=session, report=report)


def session_page(session_id: int) -> str:
    """GET /session/<id>: the hosted-flow page that session_url points at."""
    state = _state()
    with state.lock:
        session = find_session(state, session_id)
        if session is None:
            abort(404)
        return render_template("sandbox_proctoring/session.html", session=session)


def _cors(resp: Response) -> Response:
    """Let the tool's exam page call the SDK endpoints from its own origin."""
    if not request.path.startswith(("/sdk/", "/extension/")):
        return resp
    origin = request.headers.get("Origin")
    allowed = _state().allowed_origins
    if origin and (allowed is None or origin in allowed):
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = f"Content-Type, {TOKEN_HEADER}"
        resp.headers["Access-Control-Max-Age"] = "600"
    resp.headers.add("Vary", "Origin")
    return resp


def _register_routes(app: Flask) -> None:
    add = app.add_url_rule
    add("/api/external-session/assignment.json", view_func=upsert_session, methods=["POST"])
    add("/report-api/v1/actions/reports/ai/<attempt_id>", view_func=get_report)
    add("/extension/app.js", view_func=sdk_script)
    add("/sdk/session", view_func=sdk_session)
    add("/sdk/session/start", view_func=sdk_start, methods=["POST"])
    add("/sdk/session/finish", view_func=sdk_finish, methods=["POST"])
    add("/sdk/session/action", view_func=sdk_action, methods=["POST"])
    add("/report/session/<int:session_id>", view_func=report_page)
    add("/session/<int:session_id>", view_func=session_page)
    app.after_request(_cors)
