"""Storing an imported certificate list: each valid row becomes a certificate of a product of a
subject, reusing the subjects and products already stored.

A subject is matched by folded name and type (whoever owns it), a product by subject and folded
name; a reused one only gains what it lacked (phone, group, e-commerce). An import written in
several transactions keeps what it learned of the stored subjects and products in one
`KnownProducers` and only reads the rows added since, so each chunk costs the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.certificates import Certificate
from models.domain import ProductGroup, SubjectType, certificate_expiry
from models.registrations import Product, Subject
from models.text import fold

Key = tuple[str, str, dt.date, int]  # folded product, folded subject, issue date, star
SubjectKey = tuple[str, SubjectType]
ProductKey = tuple[int, str]
IDS_PER_QUERY = 500  # values of one IN (...)


@dataclass(frozen=True)
class ImportedCertificate:
    """A valid row of a list: plain values, so a worker process can hand it back (pickled)."""

    subject_name: str
    subject_type: SubjectType
    representative: str
    address: str
    phone: str | None
    product: str
    group: ProductGroup | None
    commune_code: str
    ecommerce: bool
    star: int
    issue_date: dt.date
    decision: str | None

    # Folded once, where the row is made (the parse worker), not in the bot's event loop.
    key: Key = field(init=False, compare=False)  # what makes two rows the same certificate
    subject_key: SubjectKey = field(init=False, compare=False)
    product_key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        subject, product = fold(self.subject_name), fold(self.product)
        object.__setattr__(self, "key", (product, subject, self.issue_date, self.star))
        object.__setattr__(self, "subject_key", (subject, self.subject_type))
        object.__setattr__(self, "product_key", product)


@dataclass
class KnownProducers:
    """Stored subjects and products by the keys an import matches on (ids only); the first
    stored of a key wins, as when all are read at once. Only for transactions that commit: after
    one that failed, start again with a new one (it may name rows rolled back)."""

    subjects: dict[SubjectKey, int] = field(default_factory=dict)
    products: dict[ProductKey, int] = field(default_factory=dict)
    last_subject: int = 0
    last_product: int = 0

    async def refresh(self, session: AsyncSession) -> None:
        """Read the subjects and products stored since the last look."""
        found = await session.execute(
            select(Subject.id, Subject.name, Subject.subject_type)
            .where(Subject.id > self.last_subject)
            .order_by(Subject.id)
        )
        for subject_id, name, kind in found:
            self.subjects.setdefault((fold(name), kind), subject_id)
            self.last_subject = subject_id
        products = await session.execute(
            select(Product.id, Product.subject_id, Product.name)
            .where(Product.id > self.last_product)
            .order_by(Product.id)
        )
        for product_id, subject_id, name in products:
            self.products.setdefault((subject_id, fold(name)), product_id)
            self.last_product = product_id


async def stored_keys(session: AsyncSession, rows: Sequence[ImportedCertificate]) -> set[Key]:
    """Which of these certificates are stored already (by product, producer, star, issue date)."""
    dates = sorted({row.issue_date for row in rows})
    stars = sorted({row.star for row in rows})
    keys: set[Key] = set()
    for start in range(0, len(dates), IDS_PER_QUERY):
        found = await session.execute(
            select(Product.name, Subject.name, Certificate.issue_date, Certificate.star)
            .join(Product, Certificate.product_id == Product.id)
            .join(Subject, Product.subject_id == Subject.id)
            .where(
                Certificate.issue_date.in_(dates[start : start + IDS_PER_QUERY]),
                Certificate.star.in_(stars),
            )
        )
        keys.update(
            (fold(product), fold(subject), day, star) for product, subject, day, star in found
        )
    return keys


async def stored_already(
    session: AsyncSession, rows: Sequence[ImportedCertificate], known: KnownProducers
) -> list[bool]:
    """For each row, whether its certificate is stored now (an import of the same list that ran
    meanwhile): read through the products `known` (refreshed), so a chunk reads only what
    concerns it. Unlike `stored_keys` it tells subjects of another type apart."""
    await known.refresh(session)
    products = [
        known.products.get((known.subjects.get(row.subject_key, 0), row.product_key))
        for row in rows
    ]
    wanted = sorted({product for product in products if product is not None})
    found: set[tuple[int, dt.date, int]] = set()
    for start in range(0, len(wanted), IDS_PER_QUERY):
        found.update(
            await session.execute(
                select(Certificate.product_id, Certificate.issue_date, Certificate.star).where(
                    Certificate.product_id.in_(wanted[start : start + IDS_PER_QUERY])
                )
            )
        )
    return [
        product is not None and (product, row.issue_date, row.star) in found
        for product, row in zip(products, rows, strict=True)
    ]


def _first(values: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep the first value given for `key`; None and False say nothing."""
    if value is not None and value is not False:
        values.setdefault(key, value)


async def _insert(session: AsyncSession, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """One multi-row INSERT; the new ids in the order of `rows`."""
    if not rows:
        return []
    table = cast(Table, model.__table__)
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list((await session.execute(statement, rows)).scalars())


async def _fill(
    session: AsyncSession, model: type[Any], column: str, values: dict[int, Any]
) -> None:
    """Give each row (id -> value) the value in `column` where it has none yet."""
    if not values:
        return
    table = cast(Table, model.__table__)
    empty = table.c[column].is_(None) if column != "ecommerce" else table.c[column].is_(False)
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("row"), empty)
        .values({column: bindparam("value")}),
        [{"row": row, "value": value} for row, value in values.items()],
    )


async def _subjects(
    session: AsyncSession, rows: Sequence[ImportedCertificate], known: KnownProducers, now: Any
) -> None:
    phones: dict[SubjectKey, str] = {}
    fresh: dict[SubjectKey, ImportedCertificate] = {}
    for row in rows:
        _first(phones, row.subject_key, row.phone)
        if row.subject_key not in known.subjects:
            fresh.setdefault(row.subject_key, row)
    new = [
        {
            "owner_user_id": None,
            "name": row.subject_name,
            "subject_type": row.subject_type,
            "representative": row.representative,
            "address": row.address,
            "phone": phones.get(key),
            "created_at": now,
        }
        for key, row in fresh.items()
    ]
    known.subjects.update(zip(fresh, await _insert(session, Subject, new), strict=True))
    phoned = {known.subjects[key]: phone for key, phone in phones.items() if key not in fresh}
    await _fill(session, Subject, "phone", phoned)


async def _products(
    session: AsyncSession, rows: Sequence[ImportedCertificate], known: KnownProducers, now: Any
) -> list[int]:
    """The product id of each row, new products stored."""
    keys = [(known.subjects[row.subject_key], row.product_key) for row in rows]
    groups: dict[ProductKey, ProductGroup] = {}
    online: dict[ProductKey, bool] = {}
    fresh: dict[ProductKey, ImportedCertificate] = {}
    for key, row in zip(keys, rows, strict=True):
        _first(groups, key, row.group)
        _first(online, key, row.ecommerce)
        if key not in known.products:
            fresh.setdefault(key, row)
    new = [
        {
            "subject_id": key[0],
            "name": row.product,
            "product_group": groups.get(key),
            "commune_code": row.commune_code,
            "ecommerce": online.get(key, False),
            "created_at": now,
        }
        for key, row in fresh.items()
    ]
    known.products.update(zip(fresh, await _insert(session, Product, new), strict=True))
    grouped = {known.products[key]: group for key, group in groups.items() if key not in fresh}
    await _fill(session, Product, "product_group", grouped)
    sold_online = {known.products[key]: True for key in online if key not in fresh}
    await _fill(session, Product, "ecommerce", sold_online)
    return [known.products[key] for key in keys]


async def store_imported(
    session: AsyncSession,
    rows: Sequence[ImportedCertificate],
    known: KnownProducers | None = None,
) -> None:
    """Add the rows' certificates, with the subjects and products they need (never commits).
    Pass one `known` to every chunk of an import written in several transactions."""
    known = known if known is not None else KnownProducers()
    await known.refresh(session)
    now = dt.datetime.now(dt.UTC)
    await _subjects(session, rows, known, now)
    product_ids = await _products(session, rows, known, now)
    certificates = [
        {
            "product_id": product_id,
            "star": row.star,
            "issue_date": row.issue_date,
            "expiry_date": certificate_expiry(row.issue_date),
            "decision_number": row.decision,
            "issuing_level": None,
            "registration_id": None,
            "created_at": now,
        }
        for product_id, row in zip(product_ids, rows, strict=True)
    ]
    await _insert(session, Certificate, certificates)


async def serialize_imports(session: AsyncSession) -> None:
    """Until this transaction ends, no other certificate import writes (PostgreSQL; SQLite has
    one writer anyway): two imports of one list cannot both find a certificate missing."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('ocop-certificate-import'))")
        )
