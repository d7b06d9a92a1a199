"""The official's daily digest: what came in, what waits too long, the year's totals, and
certificates about to expire — one short message, with an XLSX when the lists are long."""

from __future__ import annotations

import datetime as dt
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import xlsxwriter
from babel.dates import format_date
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import labels
from handlers.area import served_area
from handlers.callbacks import ReviewList
from handlers.checklist import Checklist, load_checklist
from handlers.events import Choice, Document, Reply
from handlers.i18n import _, current_language
from handlers.validators import display_phone
from models.admin_units import Area
from models.certificates import Certificate, Held, newest_certificates
from models.domain import RegistrationStatus, Role, Target
from models.dossier import DossierFile
from models.registrations import Product, Registration, Subject
from models.users import User

STALE_AFTER = dt.timedelta(days=7)
# Registrations whose dossier can still be completed.
UNDECIDED = (RegistrationStatus.SUBMITTED, RegistrationStatus.RETURNED, RegistrationStatus.ACCEPTED)
EXPIRY_HORIZON = dt.timedelta(days=90)
# Above this many list lines the message shows the first few and attaches the whole list.
SHORT_LIST = 10
MESSAGE_LINES = 40


@dataclass(frozen=True)
class Entry:
    code: str
    product: str
    owner: str
    commune: str
    target: Target
    waiting_since: dt.date | None = None


@dataclass(frozen=True)
class Expiring:
    product: str
    owner: str
    commune: str
    star: int
    expiry: dt.date


@dataclass
class Digest:
    local_date: dt.date
    year: int
    scope_label: str
    new: list[Entry] = field(default_factory=list)
    stale: list[Entry] = field(default_factory=list)
    by_status: dict[RegistrationStatus, int] = field(default_factory=dict)
    by_target: dict[Target, int] = field(default_factory=dict)
    expiring: list[Expiring] = field(default_factory=list)
    # Producers of these communes who blocked the bot since the last digest: call them.
    unreachable: list[str] = field(default_factory=list)
    # Registrations still to be decided whose dossier lacks required papers, with "4/8".
    incomplete: list[tuple[Entry, str]] = field(default_factory=list)


def scope_codes(area: Area, official: User) -> list[str]:
    if official.role is Role.ADMIN or official.scope is None:
        return [commune.code for commune in area.communes]
    return [code for code in official.scope if area.get(code) is not None]


def _commune(area: Area, code: str) -> str:
    commune = area.get(code)
    return commune.short_name if commune else code


async def build_digest(
    session: AsyncSession,
    area: Area,
    official: User,
    since: dt.datetime,
    now: dt.datetime,
    timezone: dt.tzinfo,
    checklist: Checklist | None = None,
) -> Digest:
    """Everything in the official's communes; new = submitted in (since, now]. `checklist`:
    the dossier's (OCOP_DOSSIER_CHECKLIST), the shipped one when None."""
    codes = scope_codes(area, official)
    local_date = now.astimezone(timezone).date()
    if official.role is Role.ADMIN or official.scope is None:
        scope_label = served_area(area)
    else:
        scope_label = ", ".join(_commune(area, code) for code in codes)
    digest = Digest(local_date=local_date, year=local_date.year, scope_label=scope_label)
    in_scope = Registration.commune_code.in_(codes)

    def entry(row: Registration, waiting: bool = False) -> Entry:
        return Entry(
            row.code,
            row.product_name,
            row.owner_name,
            _commune(area, row.commune_code),
            row.target,
            row.status_changed_at.astimezone(timezone).date() if waiting else None,
        )

    new_rows = await session.scalars(
        select(Registration)
        .where(in_scope, Registration.submitted_at > since, Registration.submitted_at <= now)
        .order_by(Registration.submitted_at, Registration.id)
    )
    digest.new = [entry(row) for row in new_rows]
    stale_rows = await session.scalars(
        select(Registration)
        .where(
            in_scope,
            Registration.status == RegistrationStatus.SUBMITTED,
            Registration.status_changed_at < now - STALE_AFTER,
        )
        .order_by(Registration.status_changed_at, Registration.id)
    )
    digest.stale = [entry(row, waiting=True) for row in stale_rows]
    year = and_(in_scope, Registration.programme_year == digest.year)
    for status, count in await session.execute(
        select(Registration.status, func.count()).where(year).group_by(Registration.status)
    ):
        digest.by_status[status] = count
    for target, count in await session.execute(
        select(Registration.target, func.count()).where(year).group_by(Registration.target)
    ):
        digest.by_target[target] = count
    digest.unreachable = await unreachable_producers(session, codes, since, now)
    digest.incomplete = await _incomplete(session, year, checklist or load_checklist(), entry)
    expiring = await expiring_certificates(session, codes, local_date, local_date + EXPIRY_HORIZON)
    digest.expiring = [replace(item, commune=_commune(area, item.commune)) for item in expiring]
    return digest


async def expiring_certificates(
    session: AsyncSession, codes: Sequence[str], first: dt.date, last: dt.date
) -> list[Expiring]:
    """Each product's newest certificate, when it expires between `first` and `last`
    (`commune` holds the commune code)."""
    rows = await session.execute(
        newest_certificates()
        .where(
            Product.commune_code.in_(codes),
            Certificate.expiry_date >= first,
            Certificate.expiry_date <= last,
        )
        .order_by(Certificate.expiry_date, Product.name)
    )
    return [
        Expiring(held.product, held.owner_name, held.commune_code, held.star, held.expiry_date)
        for held in (Held(*row) for row in rows)
    ]


async def unreachable_producers(
    session: AsyncSession, codes: Sequence[str], since: dt.datetime, now: dt.datetime
) -> list[str]:
    """Producers with a registration or product in these communes who blocked the bot."""
    registered = select(Registration.id).where(
        Registration.submitted_by_user_id == User.id, Registration.commune_code.in_(codes)
    )
    owning = (
        select(Product.id)
        .join(Subject, Subject.id == Product.subject_id)
        .where(Subject.owner_user_id == User.id, Product.commune_code.in_(codes))
    )
    rows = await session.execute(
        select(User.display_name, User.phone, User.channel_user_id)
        .where(
            User.reachable.is_(False),
            User.unreachable_since > since,
            User.unreachable_since <= now,
            registered.exists() | owning.exists(),
        )
        .order_by(User.unreachable_since)
    )
    return [
        " · ".join(
            part for part in (name or user_id, display_phone(phone) if phone else "") if part
        )
        for name, phone, user_id in rows
    ]


# --- rendering -------------------------------------------------------------------------------


async def _incomplete(
    session: AsyncSession, year: Any, checklist: Checklist, entry: Callable[[Registration], Entry]
) -> list[tuple[Entry, str]]:
    """Registrations of the year still to be decided whose dossier lacks a required paper."""
    undecided = and_(year, Registration.status.in_(UNDECIDED))
    present: dict[int, set[str]] = {}
    for registration_id, item in await session.execute(
        select(DossierFile.registration_id, DossierFile.item)
        .join(Registration, Registration.id == DossierFile.registration_id)
        .where(undecided)
        .distinct()
    ):
        present.setdefault(registration_id, set()).add(item)
    found = []
    for row in await session.scalars(
        select(Registration).where(undecided).order_by(Registration.submitted_at, Registration.id)
    ):
        done = checklist.completeness(row.kind, present.get(row.id, ()))
        if not done.complete:
            found.append((entry(row), f"{done.done}/{done.total}"))
    return found


def _day(day: dt.date) -> str:
    return format_date(day, "dd/MM/yyyy", locale=current_language.get())


def _entry_line(item: Entry) -> str:
    line = (
        f"• <b>{item.code}</b> · {html.escape(item.product)} · {html.escape(item.owner)} · "
        f"{html.escape(item.commune)} · {_(labels.TARGET[item.target])}"
    )
    if item.waiting_since:
        line += " · " + _("since {date}").format(date=_day(item.waiting_since))
    return line


def _expiring_line(item: Expiring) -> str:
    return (
        f"• {html.escape(item.product)} · {html.escape(item.owner)} · {html.escape(item.commune)}"
        f" · {labels.stars(item.star)} · " + _("expires {date}").format(date=_day(item.expiry))
    )


def render_digest(digest: Digest) -> list[Reply]:
    """The digest in the current language; long lists are cut and attached as XLSX."""
    sections = [
        (_("🆕 New registrations ({count})"), [_entry_line(e) for e in digest.new]),
        (_("⏳ Waiting for review over 7 days ({count})"), [_entry_line(e) for e in digest.stale]),
        (
            _("📅 Certificates expiring within 90 days ({count})"),
            [_expiring_line(e) for e in digest.expiring],
        ),
    ]
    if digest.unreachable:
        sections.append(
            (
                _("🚫 Producers who blocked the bot: call them ({count})"),
                [f"• {html.escape(name)}" for name in digest.unreachable],
            )
        )
    long = sum(len(lines) for _title, lines in sections) > MESSAGE_LINES
    text = [
        _("📰 <b>OCOP digest of {date}</b>").format(date=_day(digest.local_date)),
        html.escape(digest.scope_label),
        "",
    ]
    for title, lines in sections:
        text.append(f"<b>{title.format(count=len(lines))}</b>")
        shown = lines[:SHORT_LIST] if long else lines
        text += shown or [_("none")]
        if len(shown) < len(lines):
            text.append(
                _("… and {count} more in the attached file.").format(count=len(lines) - len(shown))
            )
        text.append("")
    total = sum(digest.by_status.values())
    text.append(
        _("📊 <b>Year {year}: {count} registrations</b>").format(year=digest.year, count=total)
    )
    text.append(
        " · ".join(
            f"{_(labels.STATUS[status])} {count}"
            for status, count in sorted(digest.by_status.items())
        )
        or _("none")
    )
    text.append(
        " · ".join(
            f"{_(labels.TARGET[target])} {count}"
            for target, count in sorted(digest.by_target.items())
        )
    )
    if digest.incomplete:  # one line: the list, with what each lacks, is /missing's
        text.append(
            _("📎 Dossiers missing required papers: {count}. See /missing.").format(
                count=len(digest.incomplete)
            )
        )
    choices = ((Choice(_("🗂 Registrations to review"), ReviewList().encode()),),)
    message = Reply("\n".join(text).rstrip(), choices=choices)
    if not long:
        return [message]
    name = f"ban-tin-ocop-{digest.local_date.isoformat()}.xlsx"
    return [message, Reply(_("The full lists"), document=Document(name, digest_xlsx(digest)))]


def digest_xlsx(digest: Digest) -> bytes:
    """The digest's three lists, one sheet each (user text always as text, never formulas)."""
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as book:
        bold = book.add_format({"bold": True})
        sheets = [
            (
                _("New"),
                [_("Code"), _("Product"), _("Owner"), _("Commune"), _("Target")],
                [
                    [e.code, e.product, e.owner, e.commune, _(labels.TARGET[e.target])]
                    for e in digest.new
                ],
            ),
            (
                _("Waiting"),
                [_("Code"), _("Product"), _("Owner"), _("Commune"), _("Since")],
                [
                    [
                        e.code,
                        e.product,
                        e.owner,
                        e.commune,
                        _day(e.waiting_since) if e.waiting_since else "",
                    ]
                    for e in digest.stale
                ],
            ),
            (
                _("Expiring"),
                [_("Product"), _("Owner"), _("Commune"), _("Star"), _("Expires")],
                [
                    [e.product, e.owner, e.commune, labels.stars(e.star), _day(e.expiry)]
                    for e in digest.expiring
                ],
            ),
        ]
        if digest.incomplete:
            sheets.append(
                (
                    _("Dossiers"),
                    [_("Code"), _("Product"), _("Owner"), _("Commune"), _("Dossier")],
                    [[e.code, e.product, e.owner, e.commune, n] for e, n in digest.incomplete],
                )
            )
        for title, header, rows in sheets:
            sheet = book.add_worksheet(title[:31])
            sheet.write_row(0, 0, header, bold)
            for index, row in enumerate(rows, start=1):
                for column, value in enumerate(row):
                    sheet.write_string(index, column, value)
            sheet.set_column(0, len(header) - 1, 22)
    return buffer.getvalue()
