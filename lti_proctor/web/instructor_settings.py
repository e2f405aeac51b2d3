"""The instructor view's Settings tab: change an exam's settings, or move a legacy link's code in.

Same token, framing and headers as web/instructor.py (whose instructor_page decorator resolves
the exam); the operations are exam_settings.save_exam_settings and the legacy-link note.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, current_app, redirect, request, url_for

from lti_proctor.exam_settings import (
    SettingsErrors,
    forget_legacy_link,
    get_exam_settings,
    get_legacy_link,
    parse_settings_form,
    save_exam_settings,
    settings_form_values,
    settings_from_legacy,
)
from lti_proctor.extensions import db
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.reasons import Reason
from lti_proctor.store import get_store
from lti_proctor.timeutil import utcnow
from lti_proctor.web.errors import error_response
from lti_proctor.web.instructor import InstructorPage, _render, _secured, instructor_page
from lti_proctor.web.language import gettext as _

bp = Blueprint("instructor_settings", __name__)


def _default_profile() -> str:
    return str(current_app.config.get("PROCTOR_DEFAULT_PROFILE") or "standard")


def _page(
    page: InstructorPage, values: Mapping[str, str], errors: Mapping[str, str], status: int = 200
) -> Response:
    profiles = get_profiles(current_app)
    response = _render(
        page,
        "instructor/settings.html",
        values=values,
        errors=errors,
        profiles=[(n, p.description) for n, p in sorted(profiles.items())],
        default_profile=_default_profile(),
        kept_in_tool=get_exam_settings(page.exam) is not None,
        legacy_code=get_legacy_link(get_store(), page.exam.id) is not None,
        saved=request.args.get("saved") == "1",
    )
    response.status_code = status
    return response


def _back(page: InstructorPage) -> Response:
    target = url_for("instructor_settings.settings", token=page.token, saved="1")
    return _secured(current_app.make_response(redirect(target, 303)), page.origins)


@bp.get("/instructor/<token>/settings")
@instructor_page
def settings(page: InstructorPage) -> Response:
    """The Settings tab: the exam's settings as a form."""
    row = get_exam_settings(page.exam)
    return _page(page, settings_form_values(row, title=page.exam.display_name), {})


@bp.post("/instructor/<token>/settings")
@instructor_page
def save(page: InstructorPage) -> Response:
    """Save the Settings tab; the next attempts use the new settings."""
    form = request.form.to_dict()
    try:
        values = parse_settings_form(form, profiles=get_profiles(current_app))
    except SettingsErrors as exc:
        return _page(page, form, exc.fields, status=400)
    who = page.who.sub if page.who else None
    save_exam_settings(page.exam, values, created_by=who, now=utcnow())
    db.session.commit()
    return _back(page)


@bp.post("/instructor/<token>/settings/move-code")
@instructor_page
def move_code(page: InstructorPage) -> Response:
    """The warning's one click: keep the legacy link's access code (and settings) in the tool."""
    store = get_store()
    legacy = get_legacy_link(store, page.exam.id)
    if legacy is None or not legacy.get("access_code"):
        response = error_response(
            Reason.INSTRUCTOR_NO_LEGACY_CODE,
            400,
            shape="page",
            title=_("There is no access code to move"),
            message=_("Open the exam link again from your course, then try once more."),
        )
        return _secured(response, page.origins)
    values = settings_from_legacy(
        legacy,
        title=page.exam.display_name,
        profiles=get_profiles(current_app),
        default_profile=_default_profile(),
    )
    who = page.who.sub if page.who else None
    save_exam_settings(page.exam, values, created_by=who, now=utcnow())
    db.session.commit()
    forget_legacy_link(store, page.exam.id)
    return _back(page)
