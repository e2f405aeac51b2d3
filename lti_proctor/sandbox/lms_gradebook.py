"""The sandbox LMS's gradebook: the OAuth2 token endpoint, the AGS line items and scores, and the
gradebook page, at the URL shapes and with the answers of Moodle 4.5 or Canvas.

register_gradebook() adds these routes to a sandbox LMS app (create_sandbox_lms calls it). The
rules live in lms_gradebook_data.py; the views here read the request, call one rule and shape a
Refusal the way the LMS family answers. A single-process development stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests
from flask import Blueprint, Flask, Response, current_app, render_template, request
from flask.typing import ResponseReturnValue

from lti_proctor.sandbox.lms_data import SCOPE_NRPS
from lti_proctor.sandbox.lms_gradebook_data import (
    CT_CONTAINER,
    CT_LINEITEM,
    CT_SCORE,
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY,
    SCOPE_SCORE,
    Gradebook,
    LineItem,
)
from lti_proctor.sandbox.lms_oauth import Json, KeySetFetcher, Refusal, ServiceAuth
from lti_proctor.sandbox.lms_platform import SandboxLms, get_sandbox_lms

GRADEBOOK = "sandbox_lms_gradebook"
JWKS_TIMEOUT_S = 5.0
REFRESH_S = 3
READ_SCOPES = frozenset({SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY})
WRITE_SCOPES = frozenset({SCOPE_LINEITEM})
SCORE_SCOPES = frozenset({SCOPE_SCORE})
_CANVAS_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    422: "unprocessable_entity",
}


def get_gradebook(app: Flask | None = None) -> Gradebook:
    """The Gradebook of a sandbox LMS app (default: the current app)."""
    book: Gradebook = (app or current_app).extensions[GRADEBOOK]
    return book


def tool_jwks_fetcher(jwks_url: str, timeout_s: float = JWKS_TIMEOUT_S) -> Callable[[], Json]:
    """A function that reads the tool's JWKS; an unreachable key set is an invalid_client."""

    def fetch() -> Json:
        try:
            resp = requests.get(jwks_url, timeout=timeout_s, headers={"Accept": "application/json"})
            resp.raise_for_status()
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise Refusal(
                400, "the tool's key set could not be read", code="invalid_client"
            ) from exc
        if not isinstance(body, dict):
            raise Refusal(400, "the tool's key set is not a JWKS", code="invalid_client")
        return body

    return fetch


def register_gradebook(
    app: Flask, *, tool_url: str, fetch_tool_jwks: KeySetFetcher | None = None
) -> Gradebook:
    """Add the token endpoint, line items, scores and /gradebook to a sandbox LMS app; the tool's
    keys are read from its JWKS URL unless fetch_tool_jwks hands them over."""
    lms = get_sandbox_lms(app)
    fetcher = fetch_tool_jwks or tool_jwks_fetcher(tool_url.rstrip("/") + "/.well-known/jwks.json")
    extra = frozenset({SCOPE_NRPS}) if lms.site.nrps else frozenset()
    auth = ServiceAuth(
        lms.family, lms.site.client_id, lms.auth_token_url, fetcher, extra_scopes=extra
    )
    book = Gradebook(lms, auth)
    book.sync_links()
    app.extensions[GRADEBOOK] = book
    app.register_blueprint(_blueprint(lms))
    return book


# -- answers in the LMS's shape ------------------------------------------------------------------


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(json.dumps(body), status=status, content_type=f"{content_type}; charset=utf-8")


def refused(book: Gradebook, refusal: Refusal) -> Response:
    """A refused AGS request, as Moodle's response::send() or Canvas's API error handler."""
    if book.family == "canvas":
        if refusal.status == 404:
            body: Any = {"errors": [{"message": "The specified resource does not exist."}]}
        else:
            kind = _CANVAS_KINDS.get(refusal.status, "error")
            body = {"errors": {"type": kind, "message": refusal.message}}
        return _json(body, refusal.status)
    status_line = f"{refusal.status} {refusal.message}"
    if refusal.in_status_line:
        resp = Response("[]", content_type="application/json; charset=utf-8")
    else:
        resp = _json(
            {
                "status": refusal.status,
                "reason": refusal.message,
                "request": {"method": request.method, "url": request.path},
            }
        )
    resp.status = status_line
    return resp


def _token_refused(book: Gradebook, refusal: Refusal) -> Response:
    body = {"error": refusal.code or "invalid_request"}
    if book.family == "canvas":
        body["error_description"] = refusal.message
    return _json(body, refusal.status)


def item_json(book: Gradebook, item: LineItem) -> Json:
    """A line item's JSON, with the fields and id URL its LMS family shows."""
    body: Json = {"id": item_url(book.lms, item.number)}
    if book.family == "moodle":
        body.update(
            label=item.label,
            scoreMaximum=item.score_maximum,
            resourceId=item.resource_id or "",
            tag=item.tag or "",
        )
        if item.resource_link_id is not None:
            body.update(resourceLinkId=item.resource_link_id, ltiLinkId=item.resource_link_id)
    else:
        values = {
            "scoreMaximum": item.score_maximum,
            "label": item.label,
            "resourceId": item.resource_id,
            "tag": item.tag,
            "resourceLinkId": item.resource_link_id,
        }
        body.update({k: v for k, v in values.items() if v is not None})
    for name, value in (
        ("startDateTime", item.start_date_time),
        ("endDateTime", item.end_date_time),
    ):
        if value is not None:
            body[name] = value
    return body


def item_url(lms: SandboxLms, number: int) -> str:
    """The id (URL) of line item number."""
    if lms.family == "canvas":
        return lms.url(f"/api/lti/courses/{lms.course.id}/line_items/{number}")
    return lms.url(
        f"/mod/lti/services.php/{lms.course.id}/lineitems/{number}/lineitem"
        f"?type_id={lms.site.deployment_id}"
    )


# -- views ---------------------------------------------------------------------------------------


def token() -> ResponseReturnValue:
    """POST token endpoint: client_credentials with the tool's signed JWT assertion."""
    book = get_gradebook()
    try:
        answer = book.auth.issue_token(request.form.to_dict(), request.mimetype)
    except Refusal as refusal:
        return _token_refused(book, refusal)
    resp = _json(answer)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _service(course_id: str, scopes: frozenset[str]) -> Gradebook:
    """The gradebook after the checks every AGS request passes first (token, course, type)."""
    book = get_gradebook()
    book.auth.authorize(request.headers.get("Authorization", ""), any_of=scopes)
    if course_id != book.lms.course.id:
        raise Refusal(404, "Not Found: no such course")
    if book.family == "moodle":
        # Without the right type_id, Moodle takes the LTI 2 path and refuses.
        if request.args.get("type_id") != book.lms.site.deployment_id:
            raise Refusal(401, "")
        accept = request.headers.get("Accept", "")
        if request.method == "GET" and request.path.endswith("/lineitems"):
            if accept not in ("", "*/*", CT_CONTAINER):
                raise Refusal(400, "No context or unsupported content type")
    return book


def _body() -> object:
    return request.get_json(force=True, silent=True)


def line_items(course_id: str) -> ResponseReturnValue:
    """GET (filtered list) or POST (create) the course's line items."""
    book = get_gradebook()
    try:
        if request.method == "GET":
            book = _service(course_id, READ_SCOPES)
            found = book.find_items(request.args.to_dict())
            return _json([item_json(book, item) for item in found], content_type=CT_CONTAINER)
        book = _service(course_id, WRITE_SCOPES)
        item = book.create_item(_body(), request.mimetype)
    except Refusal as refusal:
        return refused(book, refusal)
    status = 201 if book.family == "moodle" else 200
    return _json(item_json(book, item), status, content_type=CT_LINEITEM)


def line_item(course_id: str, number: int) -> ResponseReturnValue:
    """GET, PUT or DELETE one line item."""
    book = get_gradebook()
    try:
        book = _service(course_id, READ_SCOPES if request.method == "GET" else WRITE_SCOPES)
        if request.method == "DELETE":
            book.delete_item(number)
            return Response(status=204)
        if request.method == "PUT":
            item = book.update_item(number, _body(), request.mimetype)
        else:
            item = book.get_item(number)
    except Refusal as refusal:
        return refused(book, refusal)
    return _json(item_json(book, item), content_type=CT_LINEITEM)


def scores(course_id: str, number: int) -> ResponseReturnValue:
    """POST one score to a line item."""
    book = get_gradebook()
    try:
        book = _service(course_id, SCORE_SCOPES)
        stored = book.post_score(number, _body(), request.mimetype)
    except Refusal as refusal:
        return refused(book, refusal)
    if book.family == "canvas":
        result = f"{item_url(book.lms, number)}/results/{stored.get('userId')}"
        return _json({"resultUrl": result}, content_type=CT_SCORE)
    return Response("", status=200, content_type=f"{CT_SCORE}; charset=utf-8")


def gradebook_page() -> ResponseReturnValue:
    """The instructor's gradebook: line items as columns, one row per student; auto-refreshes."""
    book = get_gradebook()
    items = book.find_items({})
    students = book.students()
    cells = {
        (item.number, sub): book.latest_score(item.number, sub)
        for item in items
        for sub in students
    }
    return render_template(
        "sandbox_lms/gradebook.html",
        lms=book.lms,
        items=items,
        students=students,
        cells=cells,
        refresh_s=REFRESH_S,
    )


def _blueprint(lms: SandboxLms) -> Blueprint:
    bp = Blueprint(GRADEBOOK, __name__)
    item_methods = ["GET", "PUT", "DELETE"]
    if lms.family == "canvas":
        base = "/api/lti/courses/<course_id>/line_items"
        bp.add_url_rule("/login/oauth2/token", "token", token, methods=["POST"])
        bp.add_url_rule(base, "line_items", line_items, methods=["GET", "POST"])
        bp.add_url_rule(f"{base}/<int:number>", "line_item", line_item, methods=item_methods)
        bp.add_url_rule(f"{base}/<int:number>/scores", "scores", scores, methods=["POST"])
    else:
        base = "/mod/lti/services.php/<course_id>/lineitems"
        bp.add_url_rule("/mod/lti/token.php", "token", token, methods=["POST"])
        bp.add_url_rule(base, "line_items", line_items, methods=["GET", "POST"])
        item = f"{base}/<int:number>/lineitem"
        bp.add_url_rule(item, "line_item", line_item, methods=item_methods)
        bp.add_url_rule(f"{item}/scores", "scores", scores, methods=["POST"])
    bp.add_url_rule("/gradebook", "gradebook", gradebook_page)
    return bp
