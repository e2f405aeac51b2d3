"""The catalogs: every message the tool shows is translated into Russian and Kazakh."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from lti_proctor import i18n

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHODS = [("lti_proctor/**.py", "python"), ("lti_proctor/templates/**.html", "jinja2")]


def extracted_messages() -> set[str]:
    """Every message in the code and templates now (not the committed .pot, which may lag)."""
    found = extract_from_dir(str(ROOT), METHODS, keywords=KEYWORDS)
    return {message[0] if isinstance(message, tuple) else message for *_, message, _, _ in found}


@pytest.mark.parametrize("language", ["ru", "kk"])
def test_every_message_has_a_translation(language):
    with i18n.catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalog
        if m.id and not m.fuzzy and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    missing = sorted(extracted_messages() - translated)
    assert missing == [], f"untranslated in {language} (run scripts/catalogs.sh): {missing}"


@pytest.mark.parametrize(
    ("locale", "language", "sdk"),
    [
        ("ru", "ru", "ru"),
        ("ru-RU", "ru", "ru"),
        ("kk", "kk", "kz"),
        ("kk-KZ", "kk", "kz"),
        ("kz", "kk", "kz"),
        ("en-US", "en", "en"),
        ("de", "en", "en"),
        (None, "en", "en"),
    ],
)
def test_launch_locale_picks_the_page_and_sdk_language(locale, language, sdk):
    assert i18n.page_language(locale) == language
    assert i18n.sdk_language(i18n.page_language(locale)) == sdk


def test_catalogs_translate_and_fill_placeholders():
    assert i18n.translate("ru", "Finish exam") == "Завершить экзамен"
    assert i18n.translate("kk", "Finish exam") == "Емтиханды аяқтау"
    assert i18n.translate("en", "Finish exam") == "Finish exam"
    assert i18n.translate("ru", "%(count)s to review", count=2) == "на проверку: 2"


def test_times_have_one_format_in_every_language():
    moment = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert {i18n.format_moment(moment, lang, UTC) for lang in i18n.LANGUAGES} == {
        "2026-03-02 08:00 UTC"
    }
