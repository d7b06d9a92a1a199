"""The annual report's cumulative figures ("Luỹ kế"), computed from certificates and
registrations, as a short message and as an XLSX sheet.

Definitions (the report counts products, not certificates):
- a product is *certified* by the end of the year when it has a certificate issued on or before
  31/12 of that year; its star is the star of its newest such certificate;
- *valid* means that newest certificate has not expired on the reference day (31/12, or today
  for the current year);
- subjects, communes and e-commerce figures are over the certified products;
- registrations of the year are all those of that programme year, whatever became of them
  (rejected and withdrawn ones too), by target and by status, so the lines add up to the total;
- for a year before the 2025 reorganisation (REFORM_YEAR) the communes are also counted as the
  province's reports of that year count them, by the former communes: those merged into the
  communes of the scope, and those a certified product was made in (known from its
  registrations' former commune or its producer's address, or because its current commune was
  a single former one); products whose former commune cannot be told are counted apart.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import xlsxwriter
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import labels
from handlers.i18n import N_, _
from models.admin_units import Area
from models.certificates import Certificate
from models.domain import RegistrationStatus, SubjectType, Target
from models.registrations import Product, Registration, Subject

# Communes were reorganised on 1 July 2025: reports of earlier years count the former ones.
REFORM_YEAR = 2025
FORMER_COMMUNES = N_("Former communes (before 1/7/2025) with at least one certified product")
FORMER_UNKNOWN = N_("certified products whose former commune is not known")
SUBJECTS_AND_PRODUCTS = N_("{subjects} subjects, {products} products")
# The XLSX's columns besides the figure's name.
COLUMNS = (N_("Figure"), N_("Number"), N_("Out of"), N_("Share"), N_("Products"))


@dataclass
class Stats:
    year: int
    reference_day: dt.date
    communes_in_scope: int
    by_star: Counter[int] = field(default_factory=Counter)
    valid: int = 0
    subjects_by_type: Counter[SubjectType] = field(default_factory=Counter)
    products_by_subject_type: Counter[SubjectType] = field(default_factory=Counter)
    communes_with_products: int = 0
    on_ecommerce: int = 0
    registrations_by_target: Counter[Target] = field(default_factory=Counter)
    registrations_by_status: Counter[RegistrationStatus] = field(default_factory=Counter)
    # Years before REFORM_YEAR only (None otherwise): former communes of the scope, those with a
    # certified product, and certified products whose former commune is not known.
    former_communes_in_scope: int | None = None
    former_communes_with_products: int = 0
    former_unknown: int = 0

    @property
    def certified(self) -> int:
        return sum(self.by_star.values())

    @property
    def registrations(self) -> int:
        return sum(self.registrations_by_target.values())


async def compute_stats(
    session: AsyncSession,
    year: int,
    communes: Sequence[str],
    today: dt.date,
    area: Area | None = None,
) -> Stats:
    """The figures of `year` over `communes`; with the `area` they belong to, a year before
    REFORM_YEAR is also counted by former communes."""
    end = dt.date(year, 12, 31)
    reference = min(end, today)
    stats = Stats(year=year, reference_day=reference, communes_in_scope=len(communes))
    newest = (
        select(Certificate.product_id, func.max(Certificate.issue_date).label("issued"))
        .where(Certificate.issue_date <= end)
        .group_by(Certificate.product_id)
        .subquery()
    )
    former = (
        select(Registration.product_id, func.max(Registration.legacy_commune).label("legacy"))
        .where(Registration.legacy_commune.is_not(None))
        .group_by(Registration.product_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Product.id,
            Product.commune_code,
            Product.ecommerce,
            Subject.id,
            Subject.subject_type,
            func.max(Certificate.star),
            func.max(Certificate.expiry_date),
            func.max(former.c.legacy),
            Subject.address,
        )
        .join(newest, newest.c.product_id == Product.id)
        .join(
            Certificate,
            and_(Certificate.product_id == Product.id, Certificate.issue_date == newest.c.issued),
        )
        .join(Subject, Subject.id == Product.subject_id)
        .outerjoin(former, former.c.product_id == Product.id)
        .where(Product.commune_code.in_(communes))
        .group_by(
            Product.id,
            Product.commune_code,
            Product.ecommerce,
            Subject.id,
            Subject.subject_type,
            Subject.address,
        )
    )
    by_former = area is not None and year < REFORM_YEAR
    subjects: dict[int, SubjectType] = {}
    communes_seen: set[str] = set()
    former_seen: set[str] = set()
    for row in rows:
        _product, commune, ecommerce, subject_id, subject_type, star, expiry, legacy, address = row
        if by_former and area is not None:
            unit = area.former_commune(commune, (legacy, address))
            if unit is None:
                stats.former_unknown += 1
            else:
                former_seen.add(unit)
        stats.by_star[int(star)] += 1
        stats.valid += expiry >= reference
        stats.on_ecommerce += bool(ecommerce)
        stats.products_by_subject_type[subject_type] += 1
        subjects[subject_id] = subject_type
        communes_seen.add(commune)
    stats.subjects_by_type = Counter(subjects.values())
    stats.communes_with_products = len(communes_seen)
    if by_former and area is not None:
        in_scope = set(area.former_communes(communes))
        stats.former_communes_in_scope = len(in_scope)
        stats.former_communes_with_products = len(former_seen & in_scope)
    this_year = and_(Registration.programme_year == year, Registration.commune_code.in_(communes))
    for target, status, count in await session.execute(
        select(Registration.target, Registration.status, func.count())
        .where(this_year)
        .group_by(Registration.target, Registration.status)
    ):
        stats.registrations_by_target[target] += count
        stats.registrations_by_status[status] += count
    return stats


@dataclass(frozen=True)
class Figure:
    """One line of the report: a count, out of `whole` when it is a share; `products` for a
    kind of subject (the products of those subjects)."""

    name: str
    value: int
    whole: int | None = None
    products: int | None = None
    indent: bool = False

    def shown(self) -> str:
        """The value as the message shows it."""
        if self.products is not None:
            return _(SUBJECTS_AND_PRODUCTS).format(subjects=self.value, products=self.products)
        if self.whole is not None:
            return f"{self.value}/{self.whole} ({_percent(self.value, self.whole)})"
        return str(self.value)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def stats_rows(stats: Stats) -> list[Figure]:
    """The figures in the report's order; the message and the sheet both use them."""
    rows = [
        Figure(_("Certified OCOP products (cumulative)"), stats.certified),
        *[Figure(labels.stars(star), stats.by_star[star], indent=True) for star in (3, 4, 5)],
        Figure(_("of which still valid"), stats.valid, indent=True),
        Figure(_("Subjects with certified products"), sum(stats.subjects_by_type.values())),
    ]
    for subject_type in SubjectType:
        rows.append(
            Figure(
                _(labels.SUBJECT_TYPE[subject_type]),
                stats.subjects_by_type[subject_type],
                products=stats.products_by_subject_type[subject_type],
                indent=True,
            )
        )
    rows.append(
        Figure(
            _("Communes with at least one certified product"),
            stats.communes_with_products,
            stats.communes_in_scope,
        )
    )
    if stats.former_communes_in_scope is not None:
        rows.append(
            Figure(
                _(FORMER_COMMUNES),
                stats.former_communes_with_products,
                stats.former_communes_in_scope,
            )
        )
        if stats.former_unknown:
            rows.append(Figure(_(FORMER_UNKNOWN), stats.former_unknown, indent=True))
    rows += [
        Figure(
            _("Certified products sold on e-commerce"), stats.on_ecommerce, stats.certified
        ),
        Figure(_("Registrations in {year}").format(year=stats.year), stats.registrations),
        *[
            Figure(_(labels.TARGET[target]), stats.registrations_by_target[target], indent=True)
            for target in Target
            if stats.registrations_by_target[target]
        ],
        *[
            Figure(_(labels.STATUS[status]), stats.registrations_by_status[status], indent=True)
            for status in RegistrationStatus
            if stats.registrations_by_status[status]
        ],
    ]
    return rows


def render_stats(stats: Stats, scope_label: str) -> str:
    lines = [
        _("📊 <b>OCOP figures to {date}</b>").format(date=stats.reference_day.strftime("%d/%m/%Y")),
        html.escape(scope_label),
        "",
    ]
    lines += [
        f"{'  ' if row.indent else ''}{row.name}: <b>{row.shown()}</b>" for row in stats_rows(stats)
    ]
    return "\n".join(lines)


def stats_xlsx(stats: Stats, scope_label: str) -> bytes:
    """The figures as a sheet of numbers (counts, totals, shares as percentages)."""
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as book:
        sheet = book.add_worksheet(_("Cumulative {year}").format(year=stats.year)[:31])
        bold = book.add_format({"bold": True})
        indented = book.add_format({"indent": 1})
        share = book.add_format({"num_format": "0%"})
        sheet.write_string(
            0,
            0,
            _("OCOP figures to {date}").format(date=stats.reference_day.strftime("%d/%m/%Y")),
            bold,
        )
        sheet.write_string(1, 0, scope_label)
        for col, header in enumerate(COLUMNS):
            sheet.write_string(2, col, _(header), bold)
        for index, row in enumerate(stats_rows(stats), start=3):
            sheet.write_string(index, 0, row.name, indented if row.indent else None)
            sheet.write_number(index, 1, row.value)
            if row.whole is not None:
                sheet.write_number(index, 2, row.whole)
                if row.whole:
                    sheet.write_number(index, 3, row.value / row.whole, share)
            if row.products is not None:
                sheet.write_number(index, 4, row.products)
        sheet.set_column(0, 0, 60)
        sheet.set_column(1, 4, 12)
    return buffer.getvalue()
