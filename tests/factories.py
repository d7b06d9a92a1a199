"""Rows for tests that need data without walking through the conversation."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.ext.asyncio import AsyncSession

from models.certificates import Certificate
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    Role,
    SubjectType,
    Target,
    certificate_expiry,
)
from models.registrations import Product, Registration, Subject
from models.users import User

_numbers = itertools.count(1)


async def user(
    session: AsyncSession, role: Role = Role.PRODUCER, scope: list[str] | None = None
) -> User:
    number = next(_numbers)
    person = User(
        channel="telegram",
        channel_user_id=str(number),
        chat_id=str(number),
        display_name=f"User {number}",
        language="vi",
        role=role,
        scope=scope,
    )
    session.add(person)
    await session.flush()
    return person


async def subject(
    session: AsyncSession, name: str, kind: SubjectType = SubjectType.COOPERATIVE
) -> Subject:
    row = Subject(name=name, subject_type=kind, representative=name, address="Thôn 1", phone=None)
    session.add(row)
    await session.flush()
    return row


async def product(
    session: AsyncSession, owner: Subject, name: str, commune: str, ecommerce: bool = False
) -> Product:
    row = Product(
        subject_id=owner.id,
        name=name,
        product_group=ProductGroup.FOOD,
        commune_code=commune,
        ecommerce=ecommerce,
    )
    session.add(row)
    await session.flush()
    return row


def certificate(session: AsyncSession, item: Product, star: int, issued: dt.date) -> None:
    session.add(
        Certificate(
            product_id=item.id, star=star, issue_date=issued, expiry_date=certificate_expiry(issued)
        )
    )


def registration(
    session: AsyncSession,
    by: User,
    item: Product,
    owner: Subject,
    *,
    at: dt.datetime,
    year: int = 2026,
    kind: RegistrationKind = RegistrationKind.NEW,
    target: Target = Target.STAR3,
    status: RegistrationStatus = RegistrationStatus.SUBMITTED,
) -> Registration:
    row = Registration(
        code=f"OCOP-{year}-{next(_numbers):04d}",
        kind=kind,
        target=target,
        programme_year=year,
        commune_code=item.commune_code,
        product_id=item.id,
        subject_id=owner.id,
        product_name=item.name,
        product_group=ProductGroup.FOOD,
        owner_name=owner.representative,
        subject_name=owner.name,
        subject_type=owner.subject_type,
        address="Thôn 1",
        phone="+84905123456",
        ecommerce=item.ecommerce,
        status=status,
        submitted_by_user_id=by.id,
        channel="telegram",
        submitted_at=at,
        status_changed_at=at,
    )
    session.add(row)
    return row
