"""OCOP certificates: a product's star, issue date and decision; valid 36 months."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Select, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from models.base import Base, utcnow
from models.domain import RegistrationKind, RegistrationStatus
from models.registrations import Product, Registration, Subject


class Certificate(Base):
    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    star: Mapped[int]
    issue_date: Mapped[dt.date]
    expiry_date: Mapped[dt.date] = mapped_column(index=True)
    decision_number: Mapped[str | None] = mapped_column(String(100))
    issuing_level: Mapped[str | None] = mapped_column(String(50))
    # The registration whose evaluation produced it; None for certificates imported from a list.
    # (registrations.certificate_id points the other way, at the certificate a renewal renews.)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registrations.id", use_alter=True)
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Held:
    """A product's newest certificate, with what a message about it needs."""

    certificate_id: int
    product_id: int
    product: str
    star: int
    issue_date: dt.date
    expiry_date: dt.date
    commune_code: str
    owner_user_id: int | None
    owner_name: str
    subject_id: int


def newest_certificates() -> Select[
    int, int, str, int, dt.date, dt.date, str, int | None, str, int
]:
    """Each product's newest certificate (no later one for the same product)."""
    newer = aliased(Certificate)
    return (
        select(
            Certificate.id,
            Certificate.product_id,
            Product.name,
            Certificate.star,
            Certificate.issue_date,
            Certificate.expiry_date,
            Product.commune_code,
            Subject.owner_user_id,
            Subject.representative,
            Subject.id,
        )
        .join(Product, Product.id == Certificate.product_id)
        .join(Subject, Subject.id == Product.subject_id)
        .where(
            ~select(newer.id)
            .where(
                newer.product_id == Certificate.product_id,
                (newer.issue_date > Certificate.issue_date)
                | ((newer.issue_date == Certificate.issue_date) & (newer.id > Certificate.id)),
            )
            .exists()
        )
    )


async def held_by(session: AsyncSession, user_id: int) -> list[Held]:
    rows = await session.execute(newest_certificates().where(Subject.owner_user_id == user_id))
    return [Held(*row) for row in rows]


async def link_by_phone(session: AsyncSession, user_id: int, phone: str) -> list[Held]:
    """Give a user the unclaimed subjects that carry their (verified) phone number; returns the
    certificates that became theirs."""
    subjects = list(
        await session.scalars(
            select(Subject.id).where(Subject.phone == phone, Subject.owner_user_id.is_(None))
        )
    )
    if not subjects:
        return []
    await session.execute(
        update(Subject).where(Subject.id.in_(subjects)).values(owner_user_id=user_id)
    )
    rows = await session.execute(newest_certificates().where(Subject.id.in_(subjects)))
    return [Held(*row) for row in rows]


async def link_certificate(session: AsyncSession, certificate_id: int, user_id: int) -> Held | None:
    """A claim link: the certificate's subject becomes the user's. None when the certificate is
    unknown or its subject already belongs to someone else (a link never takes it over)."""
    certificate = await session.get(Certificate, certificate_id)
    if certificate is None:
        return None
    product = await session.get(Product, certificate.product_id)
    subject = await session.get(Subject, product.subject_id) if product else None
    if subject is None or subject.owner_user_id not in (None, user_id):
        return None
    subject.owner_user_id = user_id
    await session.flush()
    row = (
        await session.execute(newest_certificates().where(Certificate.id == certificate_id))
    ).first()
    return Held(*row) if row else None


def renewal_registered() -> Any:
    """SQL condition: a re-evaluation of the certificate's product was submitted since it was
    issued (a rejected one does not count), so reminders about it stop."""
    return (
        select(Registration.id)
        .where(
            Registration.product_id == Certificate.product_id,
            Registration.kind != RegistrationKind.NEW,
            Registration.status != RegistrationStatus.REJECTED,
            Registration.submitted_at >= Certificate.issue_date,
        )
        .exists()
    )


async def expiring(session: AsyncSession, first: dt.date, last: dt.date) -> list[Held]:
    """Newest certificates expiring between the two days, soonest first."""
    rows = await session.execute(
        newest_certificates()
        .where(Certificate.expiry_date >= first, Certificate.expiry_date <= last)
        .order_by(Certificate.expiry_date)
    )
    return [Held(*row) for row in rows]


async def due_for_reminders(session: AsyncSession, first: dt.date, last: dt.date) -> list[Held]:
    """Certificates expiring between the two days whose product has an owner to remind and no
    re-evaluation registered yet."""
    rows = await session.execute(
        newest_certificates().where(
            Certificate.expiry_date >= first,
            Certificate.expiry_date <= last,
            Subject.owner_user_id.is_not(None),
            ~renewal_registered(),
        )
    )
    return [Held(*row) for row in rows]


async def expired_unrenewed(session: AsyncSession, since: dt.date, before: dt.date) -> list[Held]:
    """Certificates that expired in [since, before) with no re-evaluation registered."""
    rows = await session.execute(
        newest_certificates().where(
            Certificate.expiry_date < before,
            Certificate.expiry_date >= since,
            ~renewal_registered(),
        )
    )
    return [Held(*row) for row in rows]


async def held_certificate(session: AsyncSession, certificate_id: int) -> Held | None:
    row = (
        await session.execute(newest_certificates().where(Certificate.id == certificate_id))
    ).first()
    return Held(*row) if row else None


async def renewal_is_registered(session: AsyncSession, certificate_id: int) -> bool:
    found = await session.scalar(
        select(Certificate.id).where(Certificate.id == certificate_id, renewal_registered())
    )
    return found is not None


async def unlink_subjects(session: AsyncSession, user_id: int) -> None:
    """The user's products are no longer theirs (consent withdrawn): no more reminders."""
    await session.execute(
        update(Subject).where(Subject.owner_user_id == user_id).values(owner_user_id=None)
    )
