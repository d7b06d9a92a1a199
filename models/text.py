"""Text utilities every layer uses: the folded key names are matched by, and the cleaning of
what people type."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_NON_WORD = re.compile(r"[\W_]+")
# Control (ESC, \x01), format (U+202E that flips the text around it, zero-width marks),
# private-use and lone surrogate characters: invisible or misleading in a name, never needed.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


@lru_cache(maxsize=4096)  # mostly the same few hundred labels and words, folded per update
def fold(text: str) -> str:
    """Case- and diacritics-insensitive key: lowercases, NFD-strips combining marks, maps đ/Đ to d,
    collapses whitespace and punctuation to single spaces, strips."""
    text = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", text).split())


def clean(text: str, multiline: bool = False) -> str:
    """NFC-normalize (phones send decomposed Vietnamese too), drop control, format and
    private-use characters, and collapse whitespace; `multiline` keeps the line breaks."""
    kept = "".join(
        char
        for char in unicodedata.normalize("NFC", text)
        if char.isspace() or unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    if multiline:
        return "\n".join(" ".join(line.split()) for line in kept.splitlines()).strip()
    return " ".join(kept.split())
