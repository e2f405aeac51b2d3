"""The sandbox LMS's deep-linking return: it checks the tool's LtiDeepLinkingResponse the way
Moodle 4.5 (mod/lti/contentitem_return.php) or Canvas (DeepLinkingController) does, then adds each
ltiResourceLink item to the course as a new link, with its gradebook column when it has a lineItem.

register_deep_linking() adds the return route at the family's URL; the rules (accept_response) are
plain Python. A single-process dev stand-in: the Canvas jti it has seen live in process memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from lti_proctor.sandbox.lms_data import LTI, SandboxResourceLink
from lti_proctor.sandbox.lms_gradebook import get_gradebook
from lti_proctor.sandbox.lms_gradebook_data import Gradebook
from lti_proctor.sandbox.lms_oauth import Refusal
from lti_proctor.sandbox.lms_platform import SandboxLms, get_sandbox_lms

DEEP_LINKING_RETURNS = "sandbox_lms_deep_linking"
RESPONSE = "LtiDeepLinkingResponse"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
LEEWAY_S = 60
MAX_AGE_S = 3600  # a response issued longer ago than this is refused


@dataclass
class DeepLinkReturns:
    """The jti values of the responses this LMS accepted (Canvas refuses a replayed one)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    jtis: dict[str, float] = field(default_factory=dict)

    def remember(self, jti: str, expires_at: float, now: float) -> None:
        """Record jti; a jti seen before is refused."""
        with self.lock:
            for seen, until in list(self.jtis.items()):
                if until + LEEWAY_S < now:
                    del self.jtis[seen]
            if jti in self.jtis:
                raise Refusal(400, "the response's jti was already used")
            self.jtis[jti] = expires_at


def accept_response(
    lms: SandboxLms,
    book: Gradebook,
    returns: DeepLinkReturns,
    token: str,
    query: Mapping[str, str],
) -> list[SandboxResourceLink]:
    """Check a deep-linking response (JWT + the return URL's query); the links it added."""
    _check_return_url(lms, query)
    claims = _verified_claims(lms, book, token)
    if lms.family == "canvas":
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Refusal(400, "the response has no jti")
        returns.remember(jti, float(claims["exp"]), time.time())
        echoed = claims.get(DL + "data")
        if echoed is not None and echoed != query.get("data"):
            raise Refusal(400, "the response's data is not the request's")
    items = claims.get(DL + "content_items", [])
    if not isinstance(items, list):
        raise Refusal(400, "content_items is not a list")
    links = [
        item for item in items if isinstance(item, dict) and item.get("type") == "ltiResourceLink"
    ]
    return [_add_link(lms, book, item) for item in links]


def _check_return_url(lms: SandboxLms, query: Mapping[str, str]) -> None:
    if lms.family == "canvas":
        if not lms.dl_data_is_ours(query.get("data", "")):
            raise Refusal(400, "the return URL's data is missing or not this LMS's")
        return
    if query.get("course") != lms.course.id or query.get("id") != lms.site.deployment_id:
        raise Refusal(400, "the return URL names another course or tool")
    teachers = {u.sesskey for u in lms.users.values() if u.is_instructor}
    if query.get("sesskey") not in teachers:
        raise Refusal(400, "sesskey is not an instructor's")


def _verified_claims(lms: SandboxLms, book: Gradebook, token: str) -> dict[str, Any]:
    """The claims once signature, iss, aud, exp/iat, type, version and deployment all hold."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise Refusal(400, "the response is not a JWT") from exc
    key = book.auth.tool_key(kid)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=lms.site.issuer,
            issuer=lms.site.client_id,
            leeway=LEEWAY_S,
            options={"require": ["iss", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise Refusal(400, f"the response's JWT is refused: {exc}") from exc
    if time.time() - float(claims["iat"]) > MAX_AGE_S:
        raise Refusal(400, "the response was issued too long ago")
    expected = {
        LTI + "message_type": RESPONSE,
        LTI + "version": "1.3.0",
        LTI + "deployment_id": lms.site.deployment_id,
    }
    for name, value in expected.items():
        if claims.get(name) != value:
            raise Refusal(400, f"{name.removeprefix(LTI)} must be {value}")
    return claims


def _add_link(lms: SandboxLms, book: Gradebook, item: dict[str, Any]) -> SandboxResourceLink:
    """A new course link from one ltiResourceLink item, with its column if it has a lineItem."""
    title = item.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else "Proctored exam"
    custom = item.get("custom") or {}
    if not isinstance(custom, dict):
        raise Refusal(400, "custom is not an object")
    line_item = item.get("lineItem")
    if line_item is not None and not isinstance(line_item, dict):
        raise Refusal(400, "lineItem is not an object")
    maximum = line_item.get("scoreMaximum") if line_item else None
    if line_item and (
        isinstance(maximum, bool) or not isinstance(maximum, int | float) or maximum <= 0
    ):
        raise Refusal(400, "lineItem.scoreMaximum must be a positive number")
    text = item.get("text")
    link = lms.add_resource_link(
        f"exam-{secrets.token_hex(4)}",
        title=title[:255],
        description=text if isinstance(text, str) else "",
        custom={str(k): str(v) for k, v in custom.items()},
        graded=False,
    )
    if line_item and maximum is not None:
        column = book.add_link_item(
            link.id,
            label=str(line_item.get("label") or title)[:255],
            score_maximum=float(maximum),
            resource_id=str(line_item.get("resourceId") or ""),
            tag=str(line_item.get("tag") or ""),
        )
        link.lineitem_id, link.points, link.graded = str(column.number), column.score_maximum, True
    return link


def deep_linking_return() -> ResponseReturnValue:
    """POST field JWT from the tool: add its links to the course, or the LMS's error page."""
    lms, book = get_sandbox_lms(), get_gradebook()
    returns: DeepLinkReturns = current_app.extensions[DEEP_LINKING_RETURNS]
    token = request.form.get("JWT", "")
    if not token:
        return render_template("sandbox_lms/error.html", error="missing JWT"), 400
    try:
        accept_response(lms, book, returns, token, request.args.to_dict())
    except Refusal as refusal:
        return render_template("sandbox_lms/error.html", error=refusal.message), refusal.status
    return redirect(url_for("sandbox_lms.index"), code=303)


def register_deep_linking(app: Flask) -> None:
    """Add the deep-linking return route (at the URL of the app's LMS family)."""
    lms = get_sandbox_lms(app)
    app.extensions[DEEP_LINKING_RETURNS] = DeepLinkReturns()
    bp = Blueprint(DEEP_LINKING_RETURNS, __name__)
    if lms.family == "canvas":
        path = "/courses/<course_id>/deep_linking_response"
        bp.add_url_rule(path, "return", _canvas_return, methods=["POST"])
    else:
        path = "/mod/lti/contentitem_return.php"
        bp.add_url_rule(path, "return", deep_linking_return, methods=["POST"])
    app.register_blueprint(bp)


def _canvas_return(course_id: str) -> ResponseReturnValue:
    if course_id != get_sandbox_lms().course.id:
        return render_template("sandbox_lms/error.html", error="not_found"), 404
    return deep_linking_return()
