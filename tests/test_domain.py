"""Pure rules: certificate expiry, targets per kind, answer parsing, message splitting."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.channels.text import split_message
from handlers.i18n import use_language
from handlers.validators import Invalid, display_phone, parse_name, parse_past_date, parse_phone
from models.domain import RegistrationKind, Target, certificate_expiry, targets_for


@pytest.fixture(autouse=True)
def _vietnamese() -> None:
    use_language("vi")


@pytest.mark.parametrize(
    ("issued", "expires"),
    [
        (dt.date(2023, 3, 15), dt.date(2026, 3, 15)),
        (dt.date(2024, 2, 29), dt.date(2027, 2, 28)),  # no 29 February in 2027
        (dt.date(2023, 12, 31), dt.date(2026, 12, 31)),
    ],
)
def test_a_certificate_is_valid_36_months(issued: dt.date, expires: dt.date) -> None:
    assert certificate_expiry(issued) == expires


def test_targets_follow_the_kind() -> None:
    assert targets_for(RegistrationKind.NEW, None) == [Target.STAR3, Target.STAR4]
    assert targets_for(RegistrationKind.REEVALUATION, 3) == [Target.STAR3, Target.UP_3_TO_4]
    assert targets_for(RegistrationKind.REEVALUATION, 5) == [Target.STAR5]
    assert targets_for(RegistrationKind.UPGRADE, None) == [Target.UP_3_TO_4, Target.UP_4_TO_5]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("0905 123 456", "+84905123456"),
        ("0905.123.456", "+84905123456"),
        ("+84 905 123 456", "+84905123456"),
        ("84905123456", "+84905123456"),
        ("0255 3822 123", "+842553822123"),  # a landline in Quảng Ngãi
    ],
)
def test_vietnamese_phone_numbers_in_their_usual_spellings(typed: str, stored: str) -> None:
    assert parse_phone(typed) == stored


@pytest.mark.parametrize("typed", ["09o5 123 456", "12345", "+1 202 555 0143", "0905 123 4567 89"])
def test_impossible_phone_numbers_are_refused(typed: str) -> None:
    with pytest.raises(Invalid):
        parse_phone(typed)


def test_phones_are_shown_the_way_vietnamese_write_them() -> None:
    assert display_phone("+84905123456") == "0905 123 456"


def test_names_are_tidied_and_limited() -> None:
    assert parse_name("  Nguyễn   Văn  A ") == "Nguyễn Văn A"
    # A phone keyboard may send decomposed Vietnamese; it is stored composed.
    assert parse_name("Nguye\u0302\u0303n") == "Nguyễn"
    with pytest.raises(Invalid, match="Quá dài"):
        parse_name("x" * 201)


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("15/03/2023", dt.date(2023, 3, 15)),
        ("5-3-2023", dt.date(2023, 3, 5)),
        ("03/2023", dt.date(2023, 3, 1)),
    ],
)
def test_certificate_dates(typed: str, day: dt.date) -> None:
    assert parse_past_date(typed, today=dt.date(2026, 11, 29)) == day


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("31/02/2024", "không có thật"),
        ("01/01/2027", "chưa tới"),
        ("01/01/2010", "từ năm 2018"),
        ("hôm qua", "ngày/tháng/năm"),
    ],
)
def test_impossible_certificate_dates(typed: str, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        parse_past_date(typed, today=dt.date(2026, 11, 29))


def test_long_messages_are_split_on_line_boundaries() -> None:
    lines = [f"{n:04d} " + "x" * 95 for n in range(100)]  # 100 lines of 100 characters
    chunks = split_message("\n".join(lines), 4096)
    assert all(len(chunk) <= 4096 for chunk in chunks)
    assert "\n".join(chunks) == "\n".join(lines)
    assert all(chunk.split("\n")[0][:4].isdigit() for chunk in chunks)  # no line cut in two
    assert len(chunks) == 3


def test_a_single_overlong_line_is_cut_hard() -> None:
    assert [len(c) for c in split_message("y" * 5000, 4096)] == [4096, 904]
