"""Size limits of a validated launch's values, checked before anything reaches the database.

Every string the LMS sends (ids, names, titles, email, locale, return URL, custom parameters,
AGS endpoints) has a maximum length here; a launch over a limit is refused with
launch.claim_invalid naming the claim, so no column overflows halfway through a launch and no
half-made attempt is left behind. The limits match (or stay under) the columns that keep them.
"""

from __future__ import annotations

from collections.abc import Mapping

from lti_proctor.lti.context import LaunchContext
from lti_proctor.lti.errors import claim_invalid

ID_MAX = 255  # LTI 1.3 core: sub, context.id and resource_link.id are at most 255 characters
TEXT_MAX = 1000  # names and titles; stored cut to their column (255)
EMAIL_MAX = 320
LOCALE_MAX = 35  # a BCP 47 tag in practice
URL_MAX = 2048
ENDPOINT_MAX = 1024  # the AGS endpoints' columns on Exam
CUSTOM_KEYS_MAX = 100
CUSTOM_KEY_MAX = 100
CUSTOM_VALUE_MAX = 4096
SCOPES_MAX = 20
# Custom parameters the tool stores, with their columns' sizes.
CUSTOM_MAX: Mapping[str, int] = {
    "exam_url": URL_MAX,
    "access_code": 255,
    "proctoring_profile": 64,
    "max_attempts": 9,
}


def check_launch_limits(ctx: LaunchContext) -> LaunchContext:
    """Return ctx when every value is within its limit; LaunchError (claim_invalid) otherwise."""
    fields: tuple[tuple[str, str | None, int], ...] = (
        ("sub", ctx.user_sub, ID_MAX),
        ("deployment_id", ctx.deployment_id, ID_MAX),
        ("context.id", ctx.context_id, ID_MAX),
        ("context.label", ctx.context_label, TEXT_MAX),
        ("context.title", ctx.context_title, TEXT_MAX),
        ("resource_link.id", ctx.resource_link_id, ID_MAX),
        ("resource_link.title", ctx.resource_link_title, TEXT_MAX),
        ("name", ctx.user_name, TEXT_MAX),
        ("given_name", ctx.given_name, TEXT_MAX),
        ("family_name", ctx.family_name, TEXT_MAX),
        ("email", ctx.email, EMAIL_MAX),
        ("locale", ctx.locale, LOCALE_MAX),
        ("launch_presentation.return_url", ctx.return_url, URL_MAX),
        ("launch_presentation.document_target", ctx.document_target, ID_MAX),
        ("tool_platform.product_family_code", ctx.platform_family, ID_MAX),
    )
    for name, value, limit in fields:
        _check(name, value, limit)
    _check_custom(ctx.custom)
    if ctx.ags is not None:
        _check("ags endpoint.lineitems", ctx.ags.lineitems, ENDPOINT_MAX)
        _check("ags endpoint.lineitem", ctx.ags.lineitem, ENDPOINT_MAX)
        if len(ctx.ags.scopes) > SCOPES_MAX:
            raise claim_invalid("ags endpoint.scope")
        for scope in ctx.ags.scopes:
            _check("ags endpoint.scope", scope, ID_MAX)
    if ctx.nrps is not None:
        _check(
            "namesroleservice.context_memberships_url", ctx.nrps.context_memberships_url, URL_MAX
        )
    return ctx


def _check(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise claim_invalid(f"{name} (longer than {limit} characters)")


def _check_custom(custom: Mapping[str, str]) -> None:
    if len(custom) > CUSTOM_KEYS_MAX:
        raise claim_invalid(f"custom (more than {CUSTOM_KEYS_MAX} parameters)")
    for key, value in custom.items():
        _check("custom parameter name", key, CUSTOM_KEY_MAX)
        _check(f"custom.{key[:CUSTOM_KEY_MAX]}", value, CUSTOM_MAX.get(key, CUSTOM_VALUE_MAX))
