"""Every user-facing string has a Vietnamese translation with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{(\w*)\}")
TAG = re.compile(r"</?\w+>")
LETTER = re.compile(r"[^\W\d_]")


def _catalog(language: str) -> Catalog:
    with (ROOT / "locales" / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    """The message ids in the code right now, found the way `make extract` finds them."""
    keywords = {"_": None, "N_": None, "ngettext": (1, 2)}
    ids: set[str] = set()
    for folder in ("bot", "handlers", "models"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, [("**.py", "python")], keywords=keywords
        ):
            ids.add(message if isinstance(message, str) else message[0])
    return ids


@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_message_in_the_code_is_in_the_catalog(extracted: set[str], language: str) -> None:
    catalog = _catalog(language)
    assert "Main menu" in extracted  # the extraction itself works
    missing = sorted(message for message in extracted if catalog.get(message) is None)
    assert missing == [], f"run `make extract` and translate: {missing}"


@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    problems = []
    for message in _catalog(language):
        if not message.id:
            continue
        # A plural message is checked form by form against its plural source.
        source = message.id[-1] if isinstance(message.id, tuple) else message.id
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in forms:
            if not text or message.fuzzy:
                problems.append(f"untranslated: {source!r}")
            elif sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(text)):
                problems.append(f"placeholders differ: {source!r} -> {text!r}")
            elif sorted(TAG.findall(source)) != sorted(TAG.findall(text)):
                problems.append(f"HTML tags differ: {source!r} -> {text!r}")
    assert problems == []


def test_vietnamese_is_really_vietnamese() -> None:
    """A catalog filled with the English ids would pass the checks above; this one would not."""
    catalog = _catalog("vi")
    same = [
        m.id
        for m in catalog
        if isinstance(m.id, str) and m.string == m.id and LETTER.search(PLACEHOLDER.sub("", m.id))
    ]
    assert same == []
