"""Domain vocabulary of the OCOP programme (DESIGN.md §2) as enums; labels live in the catalogs."""

from __future__ import annotations

import datetime as dt
import enum

CERTIFICATE_VALIDITY_MONTHS = 36


class Role(enum.StrEnum):
    PRODUCER = "producer"
    OFFICIAL = "official"
    ADMIN = "admin"


class RegistrationKind(enum.StrEnum):
    NEW = "new"
    REEVALUATION = "reeval"
    UPGRADE = "upgrade"


class Target(enum.StrEnum):
    """Columns of the official table; 5 sao is a re-evaluation of a national-level product."""

    STAR3 = "3"
    STAR4 = "4"
    STAR5 = "5"
    UP_3_TO_4 = "3to4"
    UP_4_TO_5 = "4to5"


class ProductGroup(enum.StrEnum):
    """Decision 148/QĐ-TTg (2023)."""

    FOOD = "food"
    BEVERAGE = "beverage"
    HERBAL = "herbal"
    HANDICRAFT = "handicraft"
    ORNAMENTAL = "ornamental"
    TOURISM = "tourism"


class SubjectType(enum.StrEnum):
    ENTERPRISE = "enterprise"
    COOPERATIVE = "cooperative"
    COOPERATIVE_GROUP = "coop_group"
    HOUSEHOLD = "household"


class RegistrationStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    REJECTED = "rejected"
    CERTIFIED = "certified"
    FAILED = "failed"
    DEFERRED = "deferred"
    # The producer had their personal data erased before a decision (/deletedata).
    WITHDRAWN = "withdrawn"


def targets_for(kind: RegistrationKind, current_star: int | None) -> list[Target]:
    """Targets a registration of this kind may choose, given the product's current star."""
    if kind is RegistrationKind.NEW:
        return [Target.STAR3, Target.STAR4]
    upgrades = {3: Target.UP_3_TO_4, 4: Target.UP_4_TO_5}
    if kind is RegistrationKind.UPGRADE:
        if current_star is None:
            return list(upgrades.values())
        return [upgrades[current_star]] if current_star in upgrades else []
    keep = {3: Target.STAR3, 4: Target.STAR4, 5: Target.STAR5}
    options = [keep[current_star]] if current_star in keep else []
    if current_star in upgrades:
        options.append(upgrades[current_star])
    return options


def star_before(target: Target) -> int | None:
    """The star an upgrade starts from."""
    return {Target.UP_3_TO_4: 3, Target.UP_4_TO_5: 4}.get(target)


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day `months` later, clamped to the month's last day (29/02 + 12 → 28/02)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def certificate_expiry(issue_date: dt.date) -> dt.date:
    return add_months(issue_date, CERTIFICATE_VALIDITY_MONTHS)


# Database ids are signed 64-bit; 18 decimal digits always fit, so int() of an accepted text
# never overflows a query.
MAX_NUMBER_DIGITS = 18


def parse_number(text: str, max_digits: int = MAX_NUMBER_DIGITS) -> int | None:
    """A number typed or carried in button data, or None. `isdecimal()`, not `isdigit()`: "²"
    is a digit that int() refuses; the length bound keeps ids within the database's range."""
    text = text.strip()
    if not text or len(text) > max_digits or not text.isdecimal():
        return None
    return int(text)
