"""The sandbox LMS's Names and Role Provisioning Service: the course's memberships, paged with a
Link rel="next" header, at the URL shapes of Moodle 4.5 or Canvas, behind the bearer token of its
token endpoint (scope contextmembership.readonly).

register_nrps() adds the route when the LMS sends the NRPS claim; memberships() builds one page.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, request
from flask.typing import ResponseReturnValue

from lti_proctor.sandbox.lms_data import SCOPE_NRPS
from lti_proctor.sandbox.lms_gradebook import get_gradebook, refused
from lti_proctor.sandbox.lms_oauth import Json, Refusal
from lti_proctor.sandbox.lms_platform import SandboxLms, get_sandbox_lms

NRPS = "sandbox_lms_nrps"
CT_MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
PAGE_SIZE = 2  # small on purpose: tools must follow rel="next"
MAX_PAGE_SIZE = 100


def memberships_url(lms: SandboxLms) -> str:
    """The context_memberships_url of the NRPS claim (lms_data builds the same)."""
    if lms.family == "canvas":
        return lms.url(f"/api/lti/courses/{lms.course.id}/names_and_roles")
    return lms.url(
        f"/mod/lti/services.php/CourseSection/{lms.course.id}"
        f"/bindings/{lms.site.deployment_id}/memberships"
    )


def memberships(lms: SandboxLms, *, offset: int, limit: int) -> tuple[Json, str | None]:
    """One page of the course's members, and the URL of the next page (None on the last)."""
    users = list(lms.users.values())
    page = users[offset : offset + limit]
    context: Json = {"id": lms.course.context_id, "label": lms.course.label}
    context["title"] = lms.course.title
    body: Json = {
        "id": request.url,
        "context": context,
        "members": [
            {
                "status": "Active",
                "name": u.name,
                "given_name": u.given_name,
                "family_name": u.family_name,
                "email": u.email,
                "user_id": u.sub,
                "roles": [r for r in u.roles if "/membership#" in r],
            }
            for u in page
        ],
    }
    if offset + limit >= len(users):
        return body, None
    if lms.family == "canvas":
        following = {"page": str(offset // limit + 2), "per_page": str(limit)}
    else:
        following = {"limit": str(limit), "from": str(offset + limit)}
    return body, memberships_url(lms) + "?" + urlencode(following)


def _paging(family: str) -> tuple[int, int]:
    """offset, limit from the query: Canvas page/per_page, Moodle from/limit."""
    try:
        if family == "canvas":
            limit = int(request.args.get("per_page", PAGE_SIZE))
            page = int(request.args.get("page", 1))
            offset = (page - 1) * limit
        else:
            limit = int(request.args.get("limit", PAGE_SIZE))
            offset = int(request.args.get("from", 0))
    except ValueError as exc:
        raise Refusal(400, "paging parameters must be numbers") from exc
    if limit < 1 or offset < 0:
        raise Refusal(400, "paging parameters out of range")
    return offset, min(limit, MAX_PAGE_SIZE)


def names_and_roles(course_id: str, binding: str | None = None) -> ResponseReturnValue:
    """GET the course's memberships (one page)."""
    lms, book = get_sandbox_lms(), get_gradebook()
    try:
        book.auth.authorize(
            request.headers.get("Authorization", ""), any_of=frozenset({SCOPE_NRPS})
        )
        if course_id != lms.course.id or binding not in (None, lms.site.deployment_id):
            raise Refusal(404, "Not Found: no such course")
        offset, limit = _paging(lms.family)
    except Refusal as refusal:
        return refused(book, refusal)
    body, following = memberships(lms, offset=offset, limit=limit)
    resp = Response(json.dumps(body), content_type=f"{CT_MEMBERSHIPS}; charset=utf-8")
    if following is not None:
        resp.headers["Link"] = f'<{following}>; rel="next"'
    return resp


def register_nrps(app: Flask) -> None:
    """Add the memberships route when the LMS offers NRPS to the tool."""
    lms = get_sandbox_lms(app)
    if not lms.site.nrps:
        return
    bp = Blueprint(NRPS, __name__)
    if lms.family == "canvas":
        bp.add_url_rule("/api/lti/courses/<course_id>/names_and_roles", "nrps", names_and_roles)
    else:
        path = "/mod/lti/services.php/CourseSection/<course_id>/bindings/<binding>/memberships"
        bp.add_url_rule(path, "nrps", names_and_roles)
    app.register_blueprint(bp)
