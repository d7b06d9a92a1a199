"""The annual report's cumulative figures ("Luỹ kế"), computed from certificates and
registrations, as a short message and as an XLSX sheet.

Definitions (the report counts products, not certificates):
- a product is *certified* by the end of the year when it has a certificate issued on or before
  31/12 of that year; its star is the star of its newest such certificate;
- *valid* means that newest certificate has not expired on the reference day (31/12, or today
  for the current year);
- subjects, communes and e-commerce figures are over the certified products;
- registrations of the year are those of that programme year, by target and by outcome.
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
from handlers.i18n import _
from models.certificates import Certificate
from models.domain import RegistrationStatus, SubjectType, Target
from models.registrations import Product, Registration, Subject

OUTCOMES = (RegistrationStatus.CERTIFIED, RegistrationStatus.FAILED, RegistrationStatus.DEFERRED)


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
    registrations_by_outcome: Counter[RegistrationStatus] = field(default_factory=Counter)

    @property
    def certified(self) -> int:
        return sum(self.by_star.values())

    @property
    def registrations(self) -> int:
        return sum(self.registrations_by_target.values())


async def compute_stats(
    session: AsyncSession, year: int, communes: Sequence[str], today: dt.date
) -> Stats:
    end = dt.date(year, 12, 31)
    reference = min(end, today)
    stats = Stats(year=year, reference_day=reference, communes_in_scope=len(communes))
    newest = (
        select(Certificate.product_id, func.max(Certificate.issue_date).label("issued"))
        .where(Certificate.issue_date <= end)
        .group_by(Certificate.product_id)
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
        )
        .join(newest, newest.c.product_id == Product.id)
        .join(
            Certificate,
            and_(Certificate.product_id == Product.id, Certificate.issue_date == newest.c.issued),
        )
        .join(Subject, Subject.id == Product.subject_id)
        .where(Product.commune_code.in_(communes))
        .group_by(
            Product.id, Product.commune_code, Product.ecommerce, Subject.id, Subject.subject_type
        )
    )
    subjects: dict[int, SubjectType] = {}
    communes_seen: set[str] = set()
    for _product, commune, ecommerce, subject_id, subject_type, star, expiry in rows:
        stats.by_star[int(star)] += 1
        stats.valid += expiry >= reference
        stats.on_ecommerce += bool(ecommerce)
        stats.products_by_subject_type[subject_type] += 1
        subjects[subject_id] = subject_type
        communes_seen.add(commune)
    stats.subjects_by_type = Counter(subjects.values())
    stats.communes_with_products = len(communes_seen)
    this_year = and_(Registration.programme_year == year, Registration.commune_code.in_(communes))
    for target, count in await session.execute(
        select(Registration.target, func.count())
        .where(this_year, Registration.status != RegistrationStatus.REJECTED)
        .group_by(Registration.target)
    ):
        stats.registrations_by_target[target] = count
    for status, count in await session.execute(
        select(Registration.status, func.count())
        .where(this_year, Registration.status.in_(OUTCOMES))
        .group_by(Registration.status)
    ):
        stats.registrations_by_outcome[status] = count
    return stats


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def stats_rows(stats: Stats) -> list[tuple[str, str]]:
    """(figure, value) pairs in the report's order; the message and the sheet both use them."""
    rows: list[tuple[str, str]] = [
        (_("Certified OCOP products (cumulative)"), str(stats.certified)),
        *[(f"  {labels.stars(star)}", str(stats.by_star[star])) for star in (3, 4, 5)],
        ("  " + _("of which still valid"), str(stats.valid)),
        (_("Subjects with certified products"), str(sum(stats.subjects_by_type.values()))),
    ]
    for subject_type in SubjectType:
        rows.append(
            (
                f"  {_(labels.SUBJECT_TYPE[subject_type])}",
                _("{subjects} subjects, {products} products").format(
                    subjects=stats.subjects_by_type[subject_type],
                    products=stats.products_by_subject_type[subject_type],
                ),
            )
        )
    rows += [
        (
            _("Communes with at least one certified product"),
            f"{stats.communes_with_products}/{stats.communes_in_scope} "
            f"({_percent(stats.communes_with_products, stats.communes_in_scope)})",
        ),
        (
            _("Certified products sold on e-commerce"),
            f"{stats.on_ecommerce}/{stats.certified} "
            f"({_percent(stats.on_ecommerce, stats.certified)})",
        ),
        (_("Registrations in {year}").format(year=stats.year), str(stats.registrations)),
        *[
            (f"  {_(labels.TARGET[target])}", str(stats.registrations_by_target[target]))
            for target in Target
            if stats.registrations_by_target[target]
        ],
        *[
            (f"  {_(labels.STATUS[status])}", str(stats.registrations_by_outcome[status]))
            for status in OUTCOMES
        ],
    ]
    return rows


def render_stats(stats: Stats, scope_label: str) -> str:
    lines = [
        _("📊 <b>OCOP figures to {date}</b>").format(date=stats.reference_day.strftime("%d/%m/%Y")),
        html.escape(scope_label),
        "",
    ]
    lines += [f"{name}: <b>{value}</b>" for name, value in stats_rows(stats)]
    return "\n".join(lines)


def stats_xlsx(stats: Stats, scope_label: str) -> bytes:
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as book:
        sheet = book.add_worksheet(_("Cumulative {year}").format(year=stats.year)[:31])
        bold = book.add_format({"bold": True})
        sheet.write_string(
            0,
            0,
            _("OCOP figures to {date}").format(date=stats.reference_day.strftime("%d/%m/%Y")),
            bold,
        )
        sheet.write_string(1, 0, scope_label)
        for index, (name, value) in enumerate(stats_rows(stats), start=3):
            sheet.write_string(index, 0, name.strip())
            sheet.write_string(index, 1, value)
        sheet.set_column(0, 0, 48)
        sheet.set_column(1, 1, 28)
    return buffer.getvalue()
