"""Translations: the locale of the event being handled, resolved once into a ContextVar.

Lives with the handlers rather than in bot/ because the handlers are what compose user-facing
text; the channel adapters only transport it.
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

# Installed, the catalogs ship as handlers/locales (see setup.py); in a checkout they are the
# repository's locales/ folder.
_INSTALLED = Path(__file__).resolve().parent / "locales"
LOCALES_DIR = _INSTALLED if _INSTALLED.is_dir() else _INSTALLED.parent.parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """Compiled catalog of a language; compiles the .po in memory when no .mo was built."""
    folder = LOCALES_DIR / language / "LC_MESSAGES"
    mo_path, po_path = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
        with mo_path.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    if po_path.exists():
        buffer = io.BytesIO()
        with po_path.open("rb") as handle:
            write_mo(buffer, read_po(handle, locale=language))
        buffer.seek(0)
        return Translations(buffer, domain=DOMAIN)
    return gettext.NullTranslations()


def use_language(language: str | None) -> str:
    """Make `language` current for the rest of this task; unknown codes fall back to Vietnamese."""
    chosen = language if language in LANGUAGES else DEFAULT_LANGUAGE
    current_language.set(chosen)
    return chosen


@contextmanager
def in_language(language: str | None) -> Iterator[str]:
    """Build text in another person's language (a notice, a scheduled message), then restore."""
    token = current_language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield current_language.get()
    finally:
        current_language.reset(token)


def _(message: str) -> str:
    return translations(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction; translate it later with `_`."""
    return message
