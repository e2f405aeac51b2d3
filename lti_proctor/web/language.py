"""The language of the page being built: chosen once per request, used by templates and views.

A launch's locale decides (use_language); pages reached without a launch (the root page, a
refused launch, an expired link) fall back to the browser's Accept-Language, then English.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

from lti_proctor.i18n import (
    LANGUAGES,
    format_moment,
    get_translations,
    page_language,
    sdk_language,
    translated,
)

BROWSER_TAGS = ("en", "ru", "kk", "kz")  # primary tags a browser may prefer that we have


def use_language(locale: str | None) -> str:
    """Show this request's pages in the language of locale (an LTI locale or a page language)."""
    g.language = page_language(locale)
    return str(g.language)


def current_language() -> str:
    """The language of this request: set by use_language, else the browser's, else English."""
    if not has_request_context():
        return "en"
    language = g.get("language")  # one lookup: a page asks for it once per message
    if language is None:
        # The browser's languages, best first; the first one we have wins (kk-KZ counts as kk).
        ours = [tag for tag, _ in request.accept_languages if _primary(tag) in BROWSER_TAGS]
        language = g.language = page_language(ours[0] if ours else None)
    return str(language)


def _primary(tag: str) -> str:
    return tag.lower().replace("_", "-").split("-")[0]


def gettext(message: str, **values: Any) -> str:
    """message in the request's language, with %(name)s placeholders filled."""
    text = translated(current_language(), message)
    return text % values if values else text


@functools.lru_cache(maxsize=4096)
def _rendered(language: str, message: str, autoescape: bool) -> str:
    text = translated(language, message)
    # As jinja's newstyle gettext: Markup when autoescaping, always formatted (%% -> %).
    return (Markup(text) if autoescape else text) % {}


@pass_eval_context
def _template_gettext(eval_ctx: EvalContext, message: str, **values: Any) -> str:
    """_() and gettext() in templates: jinja's newstyle gettext, with the finished text of a
    message without placeholders cached per language (the exam page has ~40 of them).

    It takes the evaluation context, not the template context: jinja copies the whole context
    for each call of a pass_context function inside a block that sets variables.
    """
    autoescape = bool(eval_ctx.autoescape)
    if not values:
        return _rendered(current_language(), message, autoescape)
    text = translated(current_language(), message)
    return (Markup(text) if autoescape else text) % values


def ngettext(singular: str, plural: str, n: int, **values: Any) -> str:
    """The singular or plural form for n in the request's language (%(num)d is n)."""
    text = get_translations(current_language()).ngettext(singular, plural, n)
    return text % {"num": n, **values}


def _moment(moment: datetime | str | None) -> Markup:
    """A <time> in the page's one format, in UTC; instructor.js shows it in the reader's zone.

    Report times arrive as ISO strings; one that does not parse is shown as it came.
    """
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return Markup("{}").format(moment)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment is None:
        return Markup("—")
    text = format_moment(moment, current_language(), UTC)
    iso = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-local-time>{}</time>').format(iso, text)


def init_app(app: Flask) -> None:
    """Give every template _(), gettext(), ngettext(), page_lang, sdk_lang and |moment."""
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda s: get_translations(current_language()).gettext(s),
        lambda s, p, n: get_translations(current_language()).ngettext(s, p, n),
        newstyle=True,
    )
    # The same newstyle behaviour without the per-call lookups of the wrappers installed above.
    app.jinja_env.globals.update(gettext=_template_gettext, _=_template_gettext)
    app.jinja_env.filters["moment"] = _moment

    @app.context_processor
    def language_context() -> dict[str, Any]:
        language = current_language()
        return {"page_lang": language, "sdk_lang": sdk_language(language), "languages": LANGUAGES}
