"""Parsers for typed answers: names, addresses, Vietnamese phone numbers, dates.

Each returns the clean value or raises `Invalid` with a localized explanation.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from handlers.i18n import _
from models.text import clean


@dataclass(frozen=True)
class Option:
    """One answer a choice step offers: stored value and shown label."""

    value: str
    label: str
    # Other words that name this option, comma-separated, already translated ("htx, hợp tác").
    words: str = ""


class Invalid(Exception):
    """Bad input: `message` says why; `options` (if any) replace the step's own buttons."""

    def __init__(self, message: str, options: Sequence[Option] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.options = tuple(options)


def letter_count(text: str) -> int:
    return sum(1 for char in text if unicodedata.category(char).startswith("L"))


def parse_name(text: str, max_length: int = 200) -> str:
    value = clean(text)
    if len(value) < 2:
        raise Invalid(_("That is too short. Please type the full name."))
    if len(value) > max_length:
        raise Invalid(
            _("That is too long ({length} characters). Please keep it under {limit}.").format(
                length=len(value), limit=max_length
            )
        )
    if letter_count(value) < 2:
        raise Invalid(_("Please type the name in letters."))
    return value


def parse_address(text: str) -> str:
    return normalize_address(parse_name(text, max_length=300))


def parse_person_name(text: str) -> str:
    """A person's name with every word capitalized, as the official table writes it."""
    return " ".join(_capitalized(word) for word in parse_name(text).split())


def parse_organisation_name(text: str) -> str:
    """An enterprise's or cooperative's name; typed all in lower case, its words capitalized
    (HTX, TNHH kept as abbreviations). Any other casing is the producer's choice."""
    value = parse_name(text)
    if value != value.lower():
        return value
    return " ".join(_ABBREVIATIONS.get(word, _capitalized(word)) for word in value.split())


def parse_product_name(text: str) -> str:
    """A product's name starts with a capital ("Nước mắm cá cơm")."""
    value = parse_name(text)
    return value[:1].upper() + value[1:]


# Unit type words stay lower case inside an address ("Thôn Tân Phong, xã Phổ Phong").
_UNIT_WORDS = frozenset({"xã", "phường", "huyện", "tỉnh", "quận", "xa", "phuong", "huyen", "tinh"})
_UNIT_PAIRS = frozenset(
    {
        ("thị", "trấn"),
        ("thị", "xã"),
        ("thành", "phố"),
        ("đặc", "khu"),
        ("thi", "tran"),
        ("thi", "xa"),
        ("thanh", "pho"),
        ("dac", "khu"),
    }
)
_ABBREVIATIONS = {"htx": "HTX", "tnhh": "TNHH", "cty": "Cty", "tm": "TM", "dv": "DV", "sx": "SX"}


def _capitalized(word: str) -> str:
    return word[:1].upper() + word[1:].lower()


def normalize_address(text: str) -> str:
    """An address typed all in lower (or upper) case gets capitalized place names and lower-case
    unit words ("thon 3 pho phong" -> "Thon 3 Pho Phong"); mixed case is kept as typed."""
    if text != text.lower() and text != text.upper():
        return text[:1].upper() + text[1:]
    words = text.lower().split(" ")
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        bare = word.strip(",;.")
        pair = (bare, words[i + 1].strip(",;.")) if i + 1 < len(words) else None
        if out and pair in _UNIT_PAIRS:
            out += [word, words[i + 1]]
            i += 2
            continue
        out.append(word if out and bare in _UNIT_WORDS else _capitalized(word))
        i += 1
    return " ".join(out)


def lacks_diacritics(text: str) -> bool:
    """A Vietnamese name typed without any accent mark ("Nguyen Van Ba")."""
    if letter_count(text) < 4 or len(text.split()) < 2 or "đ" in text.lower():
        return False
    return not any(unicodedata.combining(ch) for ch in unicodedata.normalize("NFD", text))


_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


def parse_phone(text: str) -> str:
    """A Vietnamese phone number in E.164 (+84…), from "0905 123 456", "+84905123456" etc."""
    value = clean(text)
    if _LETTERS.search(value):
        raise Invalid(_("A phone number has only digits, for example 0905 123 456."))
    try:
        number = phonenumbers.parse(value, "VN")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number_for_region(number, "VN"):
        raise Invalid(_("This is not a valid Vietnamese phone number. Example: 0905 123 456."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def display_phone(e164: str) -> str:
    """The number in the national format. Cached: the summary shows it at each of its
    steps, and parsing a number costs a tenth of a millisecond."""
    try:
        number = phonenumbers.parse(e164, "VN")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


_DATE = re.compile(r"^(?:(\d{1,2})[/.\-\s])?(\d{1,2})[/.\-\s](\d{4})$")
OCOP_FIRST_YEAR = 2018


def parse_past_date(text: str, today: dt.date) -> dt.date:
    """A certificate date as dd/mm/yyyy (or mm/yyyy when the day is not known)."""
    match = _DATE.match(clean(text))
    if not match:
        raise Invalid(_("Please type the date as day/month/year, for example 15/03/2023."))
    day, month, year = int(match[1] or 1), int(match[2]), int(match[3])
    try:
        value = dt.date(year, month, day)
    except ValueError:
        raise Invalid(_("This date does not exist. Please check the day and month.")) from None
    if value > today:
        raise Invalid(_("This date is in the future. Please type the certificate's issue date."))
    if value.year < OCOP_FIRST_YEAR:
        raise Invalid(
            _("OCOP certificates were first issued in {year}. Please check the year.").format(
                year=OCOP_FIRST_YEAR
            )
        )
    return value
