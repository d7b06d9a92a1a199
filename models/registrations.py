"""Subjects, products and their OCOP registrations, with receipt codes and status history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Integer,
    Row,
    String,
    Text,
    bindparam,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.selectable import CompoundSelect

from models.base import Base, insert_for, utcnow
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    SubjectType,
    Target,
)
from models.text import fold


def _enum(cls: type) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Subject(Base):
    """A producer ("chủ thể"): enterprise, cooperative, cooperative group or household."""

    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[SubjectType] = mapped_column(_enum(SubjectType))
    representative: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    # Only for writing: a new product and its new subject go in one flush. Never loaded.
    subject: Mapped[Subject] = relationship(lazy="raise")
    name: Mapped[str] = mapped_column(String(200))
    # Unknown for products imported from an old certificate list without a group column.
    product_group: Mapped[ProductGroup | None] = mapped_column(_enum(ProductGroup))
    commune_code: Mapped[str] = mapped_column(String(10), index=True)
    ecommerce: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Registration(Base):
    """One row of the year's registration table, with everything the producer told us."""

    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[RegistrationKind] = mapped_column(_enum(RegistrationKind))
    target: Mapped[Target] = mapped_column(_enum(Target))
    programme_year: Mapped[int] = mapped_column(Integer, index=True)
    commune_code: Mapped[str] = mapped_column(String(10), index=True)
    commune_input: Mapped[str | None] = mapped_column(String(200))
    legacy_commune: Mapped[str | None] = mapped_column(String(200))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    # Only for writing (one flush for a whole submission, batched with the other events').
    product: Mapped[Product] = relationship(lazy="raise")
    subject: Mapped[Subject] = relationship(lazy="raise")
    product_name: Mapped[str] = mapped_column(String(200))
    product_group: Mapped[ProductGroup] = mapped_column(_enum(ProductGroup))
    owner_name: Mapped[str] = mapped_column(String(200))
    subject_name: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[SubjectType] = mapped_column(_enum(SubjectType))
    address: Mapped[str] = mapped_column(String(300))
    phone: Mapped[str] = mapped_column(String(20))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    ecommerce: Mapped[bool]
    current_star: Mapped[int | None]
    certificate_issue_date: Mapped[dt.date | None]
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    status: Mapped[RegistrationStatus] = mapped_column(_enum(RegistrationStatus), index=True)
    status_note: Mapped[str | None] = mapped_column(Text)
    submitted_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set on a resubmission: the fields (RegistrationInput names) it changed; None before.
    changed_fields: Mapped[list[str] | None] = mapped_column(JSON)


class RegistrationStatusChange(Base):
    """Every status a registration went through, when and by whom."""

    __tablename__ = "registration_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"), index=True)
    registration: Mapped[Registration] = relationship(lazy="raise")  # only for writing
    status: Mapped[RegistrationStatus] = mapped_column(_enum(RegistrationStatus))
    changed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CodeCounter(Base):
    """Last receipt number given out per programme year; a row lock makes numbers unique."""

    __tablename__ = "code_counters"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


@dataclass(frozen=True)
class RegistrationInput:
    """A completed registration form, as the conversation collected it."""

    kind: RegistrationKind
    target: Target
    programme_year: int
    commune_code: str
    commune_input: str | None
    legacy_commune: str | None
    product_name: str
    product_group: ProductGroup
    subject_type: SubjectType
    subject_name: str
    owner_name: str
    address: str
    phone: str
    latitude: float | None
    longitude: float | None
    ecommerce: bool
    current_star: int | None
    certificate_issue_date: dt.date | None
    # The certificate a re-evaluation renews, when it is on file (started from a reminder).
    certificate_id: int | None = None


def format_code(year: int, number: int) -> str:
    return f"OCOP-{year}-{number:04d}"


async def next_code(session: AsyncSession, year: int) -> str:
    """The next receipt code of the year; the counter row's lock serializes concurrent submits."""
    dialect = session.get_bind().dialect.name
    bump = _BUMPS.get(dialect)
    if bump is None:
        table = CodeCounter.__table__
        bump = _BUMPS[dialect] = (
            insert_for(session)(table)
            .values(year=bindparam("year"), last=1)
            .on_conflict_do_update(index_elements=[table.c.year], set_={"last": table.c.last + 1})
            .returning(table.c.last)
        )
    connection = await session.connection()
    bumped = (await connection.execute(bump, {"year": year})).scalar_one()
    return format_code(year, int(bumped))


_BUMPS: dict[str, Any] = {}  # the upsert of next_code, built once per dialect


# Built once; the submit step runs them for every registration. The lookups that usually find
# nothing read ids on the session's connection: the ORM's own execution of a SELECT costs
# about as much again as the statement (bench/README.md, "conversation").
_SUBJECT = select(Subject.id).where(
    Subject.owner_user_id == bindparam("user_id"),
    Subject.name == bindparam("name"),
    Subject.subject_type == bindparam("subject_type"),
)
_PRODUCT = select(Product).where(
    Product.subject_id == bindparam("subject_id"), Product.name == bindparam("name")
)


async def _find_or_add_subject(
    session: AsyncSession, user_id: int, form: RegistrationInput
) -> Subject:
    """The producer's subject of that name and type, updated, or a new one (not flushed)."""
    # Only this user's rows are read; nothing pending in the session is needed. The duplicate
    # check may have read the id already, in its statement (`pending_duplicate`).
    key = _subject_key(user_id, form.subject_name, form.subject_type)
    found = session.info.pop(key, _UNREAD)
    if found is _UNREAD:
        connection = await session.connection()
        found = await connection.scalar(
            _SUBJECT,
            {"user_id": user_id, "name": form.subject_name, "subject_type": form.subject_type},
        )
    subject = None
    if found is not None:
        with session.no_autoflush:
            subject = await session.get(Subject, found)
    if subject is None:
        subject = Subject(
            owner_user_id=user_id, name=form.subject_name, subject_type=form.subject_type
        )
        session.add(subject)
    subject.representative = form.owner_name
    subject.address = form.address
    subject.phone = form.phone
    return subject


async def _find_or_add_product(
    session: AsyncSession, subject: Subject, form: RegistrationInput
) -> Product:
    """The subject's product of that name, updated, or a new one (not flushed)."""
    product = None
    if subject.id is not None:  # a new subject has no products yet
        with session.no_autoflush:
            product = await session.scalar(
                _PRODUCT, {"subject_id": subject.id, "name": form.product_name}
            )
    if product is None:
        product = Product(subject=subject, name=form.product_name)
        session.add(product)
    product.product_group = form.product_group
    product.commune_code = form.commune_code
    product.ecommerce = form.ecommerce
    return product


async def submit_registration(
    session: AsyncSession, user_id: int, channel: str, form: RegistrationInput, now: dt.datetime
) -> Registration:
    """Store a submitted registration with a fresh receipt code (the caller commits).

    Nothing is flushed here: the new rows go in the transaction's next flush, together with
    the other events' (bot/batch.py), so `registration.id` is not set yet on return."""
    subject = await _find_or_add_subject(session, user_id, form)
    product = await _find_or_add_product(session, subject, form)
    registration = Registration(
        code=await next_code(session, form.programme_year),
        kind=form.kind,
        target=form.target,
        programme_year=form.programme_year,
        commune_code=form.commune_code,
        commune_input=form.commune_input,
        legacy_commune=form.legacy_commune,
        product=product,
        subject=subject,
        product_name=form.product_name,
        product_group=form.product_group,
        owner_name=form.owner_name,
        subject_name=form.subject_name,
        subject_type=form.subject_type,
        address=form.address,
        phone=form.phone,
        latitude=form.latitude,
        longitude=form.longitude,
        ecommerce=form.ecommerce,
        current_star=form.current_star,
        certificate_issue_date=form.certificate_issue_date,
        certificate_id=form.certificate_id,
        status=RegistrationStatus.SUBMITTED,
        submitted_by_user_id=user_id,
        channel=channel,
        submitted_at=now,
        status_changed_at=now,
    )
    session.add(registration)
    session.add(
        RegistrationStatusChange(
            registration=registration,
            status=RegistrationStatus.SUBMITTED,
            changed_by_user_id=user_id,
            changed_at=now,
        )
    )
    return registration


# Which status may follow which; anything else is refused (a stale button, a double tap).
TRANSITIONS = {
    RegistrationStatus.SUBMITTED: {
        RegistrationStatus.ACCEPTED,
        RegistrationStatus.RETURNED,
        RegistrationStatus.REJECTED,
    },
    RegistrationStatus.RETURNED: {RegistrationStatus.SUBMITTED},
    RegistrationStatus.ACCEPTED: {
        RegistrationStatus.CERTIFIED,
        RegistrationStatus.FAILED,
        RegistrationStatus.DEFERRED,
    },
}


# A producer may change their answers until an official accepts the registration.
CORRECTABLE = (RegistrationStatus.SUBMITTED, RegistrationStatus.RETURNED)


def can_change(registration: Registration, status: RegistrationStatus) -> bool:
    return status in TRANSITIONS.get(registration.status, set())


def change_status(
    session: AsyncSession,
    registration: Registration,
    status: RegistrationStatus,
    by_user_id: int | None,
    now: dt.datetime,
    note: str | None = None,
) -> None:
    """Move a registration on and record the step; the caller checked `can_change`."""
    registration.status = status
    registration.status_note = note
    registration.status_changed_at = now
    session.add(
        RegistrationStatusChange(
            registration_id=registration.id,
            status=status,
            changed_by_user_id=by_user_id,
            note=note,
            changed_at=now,
        )
    )


def apply_form(
    registration: Registration, form: RegistrationInput, keep: tuple[str, ...]
) -> list[str]:
    """Give a registration the form's answers, but those named in `keep`; the names of the
    fields whose value changed."""
    changed = []
    for name in RegistrationInput.__dataclass_fields__:
        if name not in keep and getattr(registration, name) != getattr(form, name):
            changed.append(name)
            setattr(registration, name, getattr(form, name))
    return changed


async def carry_corrections(session: AsyncSession, registration: Registration) -> None:
    """Copy a corrected registration's answers to its product and subject, which statistics and
    the next registration's offered details read (their names stay: they identify them)."""
    product = await session.get(Product, registration.product_id)
    if product is not None:
        product.product_group = registration.product_group
        product.commune_code = registration.commune_code
        product.ecommerce = registration.ecommerce
    subject = await session.get(Subject, registration.subject_id)
    if subject is not None:
        subject.representative = registration.owner_name
        subject.address = registration.address
        subject.phone = registration.phone


# An official may correct a registration while reviewing it and after accepting it.
OFFICIALLY_CORRECTABLE = (RegistrationStatus.SUBMITTED, RegistrationStatus.ACCEPTED)


async def resubmit_registration(
    session: AsyncSession,
    registration_id: int,
    user_id: int,
    form: RegistrationInput,
    now: dt.datetime,
) -> Registration | None:
    """Replace the answers of a registration returned (or not yet accepted) and submit it again
    under the same code."""
    # populate_existing: another event of the batch may have loaded it before the lock.
    registration = await session.get(
        Registration, registration_id, with_for_update=True, populate_existing=True
    )
    if (
        registration is None
        or registration.submitted_by_user_id != user_id
        or registration.status not in CORRECTABLE
    ):
        return None
    subject = await _find_or_add_subject(session, user_id, form)
    product = await _find_or_add_product(session, subject, form)
    # The year stays the one it was first submitted for.
    registration.changed_fields = apply_form(registration, form, keep=("programme_year",))
    registration.subject, registration.product = subject, product
    change_status(session, registration, RegistrationStatus.SUBMITTED, user_id, now)
    return registration


# Still on its way: the same product may not be registered again while one of these stands.
PENDING = (RegistrationStatus.SUBMITTED, RegistrationStatus.RETURNED, RegistrationStatus.ACCEPTED)


# Built once: the submit step runs it for every registration. The producer's pending
# registrations of the year, with the id of the subject the form names, for the submit that
# follows the check: one round trip instead of two (the submit steps made two thirds of the
# statements on PostgreSQL, bench/README.md, "conversation").
_PENDING_AND_SUBJECT: CompoundSelect[Any] = union_all(
    select(literal("r"), Registration.id, Registration.product_name).where(
        Registration.submitted_by_user_id == bindparam("user_id"),
        Registration.programme_year == bindparam("year"),
        Registration.status.in_(PENDING),
    ),
    select(literal("s"), Subject.id, null()).where(
        Subject.owner_user_id == bindparam("user_id"),
        Subject.name == bindparam("name"),
        Subject.subject_type == bindparam("subject_type"),
    ),
)
_UNREAD = object()


def _subject_key(user_id: int, name: str, subject_type: SubjectType) -> tuple[Any, ...]:
    return ("subject-id", user_id, name, subject_type)


async def pending_duplicate(
    session: AsyncSession,
    user_id: int,
    product_name: str,
    year: int,
    subject: tuple[str, SubjectType],
    other_than: int | None = None,
) -> Registration | None:
    """The user's registration of the same product (name compared folded) in the same year
    that is still pending, if any. The id of `subject` (the form's subject name and type) is
    read in the same statement and kept, in the session, for the submit."""
    key = fold(product_name)
    # The user's registrations are their own events' work, and a batch holds one event per
    # sender, so what is pending in the session is other users' (see `last_details_of`).
    # Ids and names on the session's connection; the registration itself only when it is one.
    connection = await session.connection()
    subject_name, subject_type = subject
    both = await connection.execute(
        _PENDING_AND_SUBJECT,
        {"user_id": user_id, "year": year, "name": subject_name, "subject_type": subject_type},
    )
    rows: list[tuple[int, str]] = []
    subject_id = None
    for kind, row_id, product in both.all():
        if kind == "s":
            subject_id = row_id if subject_id is None else subject_id
        else:
            rows.append((row_id, product))
    rows.sort()  # oldest first
    session.info[_subject_key(user_id, subject_name, subject_type)] = subject_id
    for row_id, product in rows:
        if row_id != other_than and fold(product) == key:
            with session.no_autoflush:
                return await session.get(Registration, row_id)
    return None


async def registrations_of(
    session: AsyncSession, user_id: int, limit: int = 20
) -> list[Registration]:
    rows = await session.scalars(
        select(Registration)
        .where(Registration.submitted_by_user_id == user_id)
        .order_by(Registration.submitted_at.desc(), Registration.id.desc())
        .limit(limit)
    )
    return list(rows)


# The producer's details as given on their last registration (to offer them again).
_LAST_DETAILS = (
    select(
        Registration.subject_type,
        Registration.subject_name,
        Registration.owner_name,
        Registration.address,
        Registration.phone,
    )
    .where(Registration.submitted_by_user_id == bindparam("user_id"))
    .order_by(Registration.submitted_at.desc(), Registration.id.desc())
    .limit(1)
)


async def last_details_of(
    session: AsyncSession, user_id: int
) -> Row[SubjectType, str, str, str, str | None] | None:
    """Subject type and name, owner, address and phone of the user's last registration.
    Without autoflush: the batch holds one event per sender, so nothing pending in the session
    is this user's registration, and flushing the other events' rows one query at a time was
    most of the batch's ORM cost (bench/README.md, "conversation")."""
    connection = await session.connection()  # read as it is: no ORM execution, no autoflush
    result = await connection.execute(_LAST_DETAILS, {"user_id": user_id})
    return result.first()


async def waiting_for_review(
    session: AsyncSession, communes: Sequence[str] | None
) -> list[Registration]:
    """Registrations an official decides next (submitted, then accepted ones awaiting the
    grading), oldest first; `communes` None means everywhere."""
    query = (
        select(Registration)
        .where(Registration.status.in_([RegistrationStatus.SUBMITTED, RegistrationStatus.ACCEPTED]))
        .order_by(Registration.status.desc(), Registration.submitted_at, Registration.id)
    )
    if communes is not None:
        query = query.where(Registration.commune_code.in_(communes))
    return list(await session.scalars(query))


async def registration_id_by_code(session: AsyncSession, code: str) -> int | None:
    return await session.scalar(select(Registration.id).where(Registration.code == code))


async def open_registrations_of(
    session: AsyncSession, user_id: int, closed: Collection[RegistrationStatus]
) -> list[Registration]:
    """The user's registrations not in a `closed` status, newest first."""
    rows = await session.scalars(
        select(Registration)
        .where(Registration.submitted_by_user_id == user_id, Registration.status.not_in(closed))
        .order_by(Registration.id.desc())
    )
    return list(rows)


async def hold_for_files(session: AsyncSession, registration_id: int) -> None:
    """Lock a registration while a file is added to its dossier: two files sent at once (two
    devices, two processes) wait for each other, so a size limit checked under it holds. NO
    KEY: rows of other tables that refer to the registration are not held up meanwhile."""
    await session.scalar(
        select(Registration.id)
        .where(Registration.id == registration_id)
        .with_for_update(key_share=True)
    )


async def registrations_in(
    session: AsyncSession,
    statuses: Collection[RegistrationStatus],
    communes: Collection[str] | None,
    year: int | None = None,
) -> list[Registration]:
    """Registrations in these statuses (of a programme year), by commune then oldest first;
    `communes` None means everywhere."""
    query = select(Registration).where(Registration.status.in_(statuses))
    if communes is not None:
        query = query.where(Registration.commune_code.in_(communes))
    if year is not None:
        query = query.where(Registration.programme_year == year)
    query = query.order_by(Registration.commune_code, Registration.submitted_at, Registration.id)
    return list(await session.scalars(query))
