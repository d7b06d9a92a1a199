"""Parsers for typed answers: names, addresses, Vietnamese phone numbers, dates.

Each returns the clean value or raises `Invalid` with a localized explanation.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers

from handlers.i18n import _


@dataclass(frozen=True)
class Option:
    """One answer a choice step offers: stored value and shown label."""

    value: str
    label: str


class Invalid(Exception):
    """Bad input: `message` says why; `options` (if any) replace the step's own buttons."""

    def __init__(self, message: str, options: Sequence[Option] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.options = tuple(options)


# Control (ESC, \x01), format (U+202E that flips the text around it, zero-width marks),
# private-use and lone surrogate characters: invisible or misleading in a name, never needed.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


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
    return parse_name(text, max_length=300)


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


def display_phone(e164: str) -> str:
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
