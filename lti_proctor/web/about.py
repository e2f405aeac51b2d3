"""The pages a person reaches without a launch: the root URL and a plain GET of the launch URL.

Both say what the tool is and how it is opened (from the course in the LMS), in the browser's
language; neither reads or changes anything.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("about", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """What lti-proctor is and how students and instructors open it."""
    return render_template("about.html", base_url=current_app.config["BASE_URL"], direct=False)


@bp.get("/lti/launch")
def launch_opened_directly() -> ResponseReturnValue:
    """The launch URL opened as a link: launches come from the LMS, so explain that."""
    return render_template("about.html", base_url=current_app.config["BASE_URL"], direct=True)
