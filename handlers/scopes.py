"""Communes typed by an admin or an official after a command: codes or names, in any mix.

"/canbo them 5301 Sa Huỳnh, tra cau" and "/xuat 2026 21478" mean the same kind of thing: each
commune by its code, its short name or its full name ("phường Sa Huỳnh"), with or without
diacritics, commas optional.
"""

from __future__ import annotations

from collections.abc import Sequence

from models.admin_units import Area
from models.text import fold

# Words that ask for the whole area instead of a list of communes.
WHOLE_AREA = {"all", "tatca", "toanbo", "toanbodiaban", "ca", "het"}


def _names(area: Area) -> dict[str, str]:
    names = {}
    for commune in area.communes:
        names[commune.code] = commune.code
        for name in (commune.short_name, commune.name):
            names[fold(name).replace(" ", "")] = commune.code
    return names


def wants_whole_area(words: Sequence[str]) -> bool:
    return bool(words) and fold("".join(words)).replace(" ", "") in WHOLE_AREA


def parse_communes(area: Area, words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The codes the words name, in order and each once, and the words naming none."""
    tokens = [part for word in words for part in word.replace(",", " , ").split()]
    names = _names(area)
    codes: list[str] = []
    unknown: list[str] = []
    position = 0
    while position < len(tokens):
        if tokens[position] == ",":
            position += 1
            continue
        for end in range(len(tokens), position, -1):  # the longest run of words that is a name
            run = tokens[position:end]
            if "," in run:
                continue
            code = names.get(fold("".join(run)).replace(" ", ""))
            if code is not None:
                if code not in codes:
                    codes.append(code)
                position = end
                break
        else:
            unknown.append(tokens[position])
            position += 1
    return codes, unknown
