"""Registration routes: LTI Dynamic Registration at /lti/register, Canvas's JSON configuration.

Views read the request and call one operation (lti.onboarding, lti.tool_config); refusals are
RegisterErrors, turned into pages by web/errors.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from lti_proctor.extensions import db
from lti_proctor.lti.dynamic_registration import HttpLimits
from lti_proctor.lti.onboarding import register_with_invite
from lti_proctor.lti.tool_config import ToolIdentity, canvas_developer_key

bp = Blueprint("register", __name__)


def tool_identity() -> ToolIdentity:
    """The tool as the current app presents itself to an LMS."""
    return ToolIdentity(base_url=current_app.config["BASE_URL"])


def http_limits() -> HttpLimits:
    """Timeout and size limit of registration calls; loopback only outside production."""
    cfg = current_app.config
    return HttpLimits(
        timeout_s=float(cfg["LTI_HTTP_TIMEOUT_S"]),
        max_bytes=int(cfg["LTI_REGISTER_MAX_BYTES"]),
        allow_loopback=not cfg["PRODUCTION"],
    )


@bp.get("/lti/register")
def register() -> ResponseReturnValue:
    """The LMS's Dynamic Registration frame: register, then show what was registered."""
    registered = register_with_invite(
        invite_token=request.args.get("invite"),
        openid_configuration=request.args.get("openid_configuration"),
        registration_token=request.args.get("registration_token"),
        tool=tool_identity(),
        limits=http_limits(),
        now=datetime.now(UTC),
    )
    db.session.commit()
    response = current_app.make_response(render_template("register/done.html", r=registered))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/lti/config/canvas.json")
def canvas_json() -> ResponseReturnValue:
    """Canvas's developer-key JSON, for the "Enter URL" configuration method."""
    return jsonify(canvas_developer_key(tool_identity()))
