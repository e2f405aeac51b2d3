"""Message catalogs (English, Russian, Kazakh) and the language a page is shown in.

The .po files under translations/ are the only source: they are compiled in memory the first time
a language is used (no .mo files in git, no build step). Nothing here reads the request; web/
picks the language (launch locale, else the browser's Accept-Language) and passes it in.
"""

from __future__ import annotations

import functools
import io
from datetime import datetime, tzinfo
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "ru", "kk")
DEFAULT_LANGUAGE = "en"
CATALOG_DIR = Path(__file__).parent / "translations"
# One format throughout, in every language (digits read the same in en, ru and kk); the zone
# follows it. instructor.js writes the same shape in the reader's own zone.
DATETIME_PATTERN = "yyyy-MM-dd HH:mm"


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


def page_language(locale: str | None) -> str:
    """The language for an LTI/browser locale: ru, ru-RU -> ru; kk, kk-KZ, kz -> kk; else en."""
    primary = (locale or "").strip().lower().replace("_", "-").split("-")[0]
    if primary == "kz":  # a country code some platforms send for Kazakh
        return "kk"
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def sdk_language(language: str) -> str:
    """The proctoring SDK's name for a page language: en, ru or kz."""
    return "kz" if page_language(language) == "kk" else page_language(language)


def catalog_path(language: str) -> Path:
    """Where the .po source of a language lives."""
    return CATALOG_DIR / language / "LC_MESSAGES" / "messages.po"


@functools.cache
def get_translations(language: str) -> NullTranslations:
    """The compiled catalog of a language (English is the source text: no catalog)."""
    if language not in LANGUAGES or language == DEFAULT_LANGUAGE:
        return NullTranslations()
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain="messages")


@functools.lru_cache(maxsize=4096)
def translated(language: str, message: str) -> str:
    """message in language, looked up once per process (a page asks for the same ~40 messages
    on every render; the catalogs never change while the process runs). Bounded, because a
    message may come from data rather than from a template."""
    return get_translations(language).gettext(message)


def translate(language: str, message: str, **values: object) -> str:
    """message in language, with %(name)s placeholders filled from values."""
    text = translated(language, message)
    return text % values if values else text


def format_moment(moment: datetime, language: str, zone: tzinfo) -> str:
    """A time in the reader's language and zone, always in DATETIME_PATTERN, with the zone."""
    text = format_datetime(moment, DATETIME_PATTERN, tzinfo=zone, locale=Locale.parse(language))
    return f"{text} {moment.astimezone(zone).strftime('%Z')}".strip()
