"""A data subject's rights over what is stored about them: everything gathered for /mydata, and
erasure for /deletedata (registrations keep their non-personal fields for the statistics)."""

from __future__ import annotations

import datetime as dt
import html
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from sqlalchemy import delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from models import keys
from models.certificates import held_by
from models.consent import Decision, consents_of, decide
from models.conversations import Conversation
from models.domain import RegistrationStatus, SubjectType
from models.dossier import files_of, forget_dossiers
from models.menus import ChatMenu
from models.outbox import OutboxMessage, OutboxStatus
from models.registrations import Registration, Subject, change_status
from models.users import User

ERASED = "—"  # what stands where a name or an address was
UNDECIDED = (RegistrationStatus.SUBMITTED, RegistrationStatus.RETURNED, RegistrationStatus.ACCEPTED)
SHORTEST_SEARCHED = 4  # shorter pieces ("A") would purge unrelated messages


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value.value if hasattr(value, "value") and not isinstance(value, str) else value


def _row(row: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        column.key: _plain(getattr(row, column.key))
        for column in row.__table__.columns
        if column.key not in skip
    }


async def everything_about(session: AsyncSession, user: User, chat: Conversation) -> dict[str, Any]:
    """All that is stored about the user, as plain JSON-able values."""
    registrations = list(
        await session.scalars(
            select(Registration)
            .where(Registration.submitted_by_user_id == user.id)
            .order_by(Registration.id)
        )
    )
    reminders = await session.execute(
        select(OutboxMessage.key, OutboxMessage.sent_at, OutboxMessage.text)
        .where(
            OutboxMessage.user_id == user.id,
            OutboxMessage.key.like(keys.reminder_like()),
            OutboxMessage.status == OutboxStatus.SENT.value,
        )
        .order_by(OutboxMessage.id)
    )
    return {
        "account": _row(user, skip=("scope",)),
        "registrations": [_row(registration) for registration in registrations],
        "certificates": [
            {
                "certificate_id": item.certificate_id,
                "product": item.product,
                "star": item.star,
                "issue_date": item.issue_date.isoformat(),
                "expiry_date": item.expiry_date.isoformat(),
                "representative": item.owner_name,
            }
            for item in await held_by(session, user.id)
        ],
        "consents": [_row(record) for record in await consents_of(session, user.id)],
        "reminders_sent": [
            {"key": keys.notice_of(key), "sent_at": _plain(sent_at), "text": text}
            for key, sent_at, text in reminders
        ],
        "form_in_progress": dict(chat.answers) if chat.flow else None,
        # What that form was started with: the details of the last registration it reuses.
        "form_started_with": dict(chat.meta or {}) if chat.flow else None,
        "dossier_files": [
            _row(row)
            for registration in registrations
            for row in await files_of(session, registration.id)
        ],
    }


@dataclass(frozen=True)
class Erasure:
    registrations: int
    withdrawn: list[Registration]
    # Contents of the erased dossiers (models/dossier.py), to remove from the store after the
    # transaction (the store may be across the network) once nothing else refers to them.
    dossier_digests: list[str] = field(default_factory=list)


ERASURE_LOCK = "personal-data-erasure"


async def naming_people(session: AsyncSession) -> None:
    """First in a transaction that writes messages built from people's details it reads (the
    digest, the arrival notices): on PostgreSQL it waits for an erasure under way and holds the
    next one off until it commits, so no message is built from details an erasure is removing
    and written after its purge of the outbox. SQLite's one writer serializes them already."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock_shared(hashtext(:name))"), {"name": ERASURE_LOCK}
        )


async def erase_person(
    session: AsyncSession, user: User, chat: Conversation, now: dt.datetime
) -> Erasure:
    """Erase the user's personal data everywhere: their registrations and producers keep only
    non-personal fields, undecided registrations are withdrawn, queued and sent messages that
    carry the details are purged, the form in progress is dropped. The caller tells the
    officials of the withdrawn registrations."""
    if session.get_bind().dialect.name == "postgresql":  # see `naming_people`
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": ERASURE_LOCK}
        )
    registrations = list(
        await session.scalars(
            select(Registration)
            .where(Registration.submitted_by_user_id == user.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    subjects = list(
        await session.scalars(
            select(Subject).where(
                or_(
                    Subject.owner_user_id == user.id,
                    Subject.id.in_({registration.subject_id for registration in registrations}),
                )
            )
        )
    )
    pieces = {user.display_name, user.username or "", user.phone or ""}
    withdrawn = []
    for registration in registrations:
        pieces |= {registration.owner_name, registration.address, registration.phone}
        pieces |= {registration.commune_input or ""}
        pieces |= {str(c) for c in (registration.latitude, registration.longitude) if c is not None}
        if registration.subject_type is SubjectType.HOUSEHOLD:
            pieces.add(registration.subject_name)
            registration.subject_name = ERASED
        registration.owner_name = registration.address = ERASED
        registration.phone = ""
        registration.latitude = registration.longitude = None
        registration.commune_input = None
        if registration.status in UNDECIDED:
            change_status(session, registration, RegistrationStatus.WITHDRAWN, user.id, now)
            withdrawn.append(registration)
    for subject in subjects:
        pieces |= {subject.representative, subject.address, subject.phone or ""}
        if subject.subject_type is SubjectType.HOUSEHOLD:
            pieces.add(subject.name)
            subject.name = ERASED
        subject.representative = subject.address = ERASED
        subject.phone, subject.owner_user_id = None, None
    if user.consent_version is not None:
        decide(session, user, user.consent_version, Decision.WITHDRAWN, now)
    user.display_name, user.username, user.phone = "", None, None
    if chat.flow is not None or chat.answers or chat.meta:  # a form, or a file awaiting its item
        chat.flow, chat.step, chat.answers, chat.meta, chat.editing = None, None, {}, None, False
        chat.version += 1
    pieces |= _phone_forms(pieces)
    await _purge_messages(session, user, {p for p in pieces if len(p) >= SHORTEST_SEARCHED})
    await session.execute(
        delete(ChatMenu).where(ChatMenu.channel == user.channel, ChatMenu.chat_id == user.chat_id)
    )
    digests = await forget_dossiers(session, [registration.id for registration in registrations])
    await session.flush()
    return Erasure(len(registrations), withdrawn, digests)


async def _purge_messages(session: AsyncSession, user: User, pieces: set[str]) -> None:
    """Messages to the user, and any message (to officials too) that names their details."""
    mentions = [OutboxMessage.text.contains(piece, autoescape=True) for piece in sorted(pieces)]
    await session.execute(
        delete(OutboxMessage).where(
            or_(
                OutboxMessage.user_id == user.id,
                (OutboxMessage.channel == user.channel) & (OutboxMessage.chat_id == user.chat_id),
                *mentions,
            )
        )
    )
    # An attachment to someone else (an official's export) names them inside the file: read
    # each one rather than only the caption. Only files made since the person first wrote can
    # name them, which keeps this to the few exports since (the outbox keeps 30 days anyway).
    attached = await session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.document.is_not(None), OutboxMessage.created_at >= user.created_at
        )
    )
    for message_id in list(attached):
        document = await session.scalar(
            select(OutboxMessage.document).where(OutboxMessage.id == message_id)
        )
        if document is not None and _mentions(document, pieces):
            await session.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))


def _mentions(content: bytes, pieces: set[str]) -> bool:
    """Whether a file the bot made names one of `pieces`: a spreadsheet or document (a zip of
    XML parts) is read part by part, anything else as UTF-8 text."""
    buffer = io.BytesIO(content)
    if zipfile.is_zipfile(buffer):
        with zipfile.ZipFile(buffer) as archive:
            texts = (html.unescape(archive.read(name).decode("utf-8", "replace"))
                     for name in archive.namelist())  # fmt: skip
            return any(piece in text for text in texts for piece in pieces)
    text = content.decode("utf-8", "replace")
    return any(piece in text for piece in pieces)


def _phone_forms(pieces: set[str]) -> set[str]:
    """A stored +84… number is shown as 0905 123 456: search for both."""
    shown = set()
    for piece in pieces:
        if piece.startswith("+84"):
            try:
                number = phonenumbers.parse(piece, "VN")
            except phonenumbers.NumberParseException:
                continue
            shown.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    return shown
