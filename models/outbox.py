"""Outbox of the messages the bot owes (replies, see models/replies.py, and notifications),
and the pacing state that keeps delivery within Telegram's limits across every bot process
sharing the database.

A notification is written here in the same transaction as the change that caused it, under a
unique key, so it is queued exactly once. Delivery claims messages in short transactions that
lock the channel's budget row: claims from several processes are serialized, every message is
leased to one process, and the overall and per-chat send times are planned in one place.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    not_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from models import keys
from models.base import Base, insert_if_absent
from models.users import User


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    # The claim asks, per chat, for its oldest message still to send. Ids are never reused
    # (SQLite would reuse the highest after a delete): a delivery worker writes a send's
    # result by id, and a message purged while on the wire must not hand its result to a new
    # message that took its id (migration 0008).
    __table_args__ = (
        Index("ix_outbox_chat_queue", "channel", "chat_id", "status", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[Any] | None] = mapped_column(JSON)
    # A reply keyboard ({"rows": [[[label, request]…]…]}) or {"remove": true}.
    keyboard: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # An answer to the chat's own message (sent before notifications), not a notification.
    reply: Mapped[bool] = mapped_column(default=False)
    document_name: Mapped[str | None] = mapped_column(String(200))
    document: Mapped[bytes | None] = mapped_column(LargeBinary)
    # What a channel with approved templates (Zalo ZNS) needs to say the same outside a chat:
    # {"kind": "reminder" | "outcome", "values": {...}}. None for everything else.
    template: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True, default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[dt.datetime]
    lease_until: Mapped[dt.datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]


def stepped_aside(now: dt.datetime) -> ColumnElement[bool]:
    """A chat's messages keep their order, so one waiting for a retry holds back the ones
    queued after it; but not a file waiting for its retry. A file answers nothing the chat
    waits on to go on (no question, no receipt), and Telegram's file servers may refuse one
    for a quarter of an hour of retries: the chat's later messages go, and it follows."""
    return and_(
        OutboxMessage.status == OutboxStatus.PENDING.value,
        OutboxMessage.document_name.is_not(None),
        OutboxMessage.attempts > 0,
        OutboxMessage.not_before > now,
    )


class DeliveryChat(Base):
    """When the next message may go to a chat (1 s for a private chat, 3 s for a group)."""

    __tablename__ = "delivery_chats"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[dt.datetime] = mapped_column(index=True)


class DeliveryBudget(Base):
    """The next free slot of a channel's overall rate, shared by all processes."""

    __tablename__ = "delivery_budget"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_slot_at: Mapped[dt.datetime]


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    chat_id: str,
    user_id: int | None,
    text: str,
    choices: list[Any] | None,
    document_name: str | None,
    document: bytes | None,
    now: dt.datetime,
    template: dict[str, Any] | None = None,
) -> bool:
    """Queue a message once: False when one with this key was queued before."""
    queued = await insert_if_absent(
        session,
        OutboxMessage,
        key=key,
        channel=channel,
        chat_id=chat_id,
        user_id=user_id,
        text=text,
        choices=choices,
        document_name=document_name,
        document=document,
        template=template,
        status=OutboxStatus.PENDING.value,
        attempts=0,
        not_before=now,
        created_at=now,
    )
    if queued:
        await insert_if_absent(session, DeliveryChat, channel=channel, chat_id=chat_id, next_at=now)
    return queued


@dataclass(frozen=True)
class Pacing:
    rate: float  # messages per second over all chats
    # A little over Telegram's one message per second per chat, for network jitter.
    private_interval: float = 1.05
    group_interval: float = 3.0  # 20 per minute
    lease: dt.timedelta = dt.timedelta(seconds=60)
    horizon: float = 1.0  # seconds of slots one claim may plan

    def interval(self, chat_id: str) -> float:
        return self.group_interval if chat_id.startswith("-") else self.private_interval


@dataclass(frozen=True)
class Claimed:
    id: int
    chat_id: str
    text: str
    choices: list[Any] | None
    document_name: str | None
    document: bytes | None
    slot: dt.datetime
    attempts: int
    keyboard: dict[str, Any] | None = None
    reply: bool = False
    template: dict[str, Any] | None = None
    user_id: int | None = None
    key: str = ""


async def claim(
    session: AsyncSession,
    channel: str,
    worker: str,
    now: dt.datetime,
    pacing: Pacing,
    most: int | None = None,
    *,
    keep: Collection[int] = (),
) -> list[Claimed]:
    """Lease the next due messages (at most `most`), one per chat, each with the time it may
    be sent. `keep`: the messages the claiming worker still has in hand (on the wire, or sent
    and their result not yet written): their leases may have run out while the database was
    locked, but they are not taken back from it."""
    await insert_if_absent(session, DeliveryBudget, channel=channel, next_slot_at=now)
    budget = await session.scalar(
        select(DeliveryBudget)
        .where(DeliveryBudget.channel == channel)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert budget is not None
    # Leases of a crashed process run out: its messages go back to the queue.
    lapsed = (
        OutboxMessage.status == OutboxStatus.SENDING.value,
        OutboxMessage.lease_until < now,
    )
    expired = await session.scalars(select(OutboxMessage.id).where(*lapsed))
    if taken_back := [message_id for message_id in expired if message_id not in keep]:
        await session.execute(  # conditions again: another worker may have written meanwhile
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(taken_back), *lapsed)
            .values(status=OutboxStatus.PENDING.value, leased_by=None, lease_until=None)
        )
    step = dt.timedelta(seconds=1 / pacing.rate)
    cursor = max(now, budget.next_slot_at)
    horizon = now + dt.timedelta(seconds=pacing.horizon)
    capacity = int((horizon - cursor) / step) if cursor < horizon else 0
    if most is not None:
        capacity = min(capacity, most)
    if capacity <= 0:
        return []
    waiting_here = select(OutboxMessage.id).where(
        OutboxMessage.channel == channel,
        OutboxMessage.chat_id == DeliveryChat.chat_id,
        OutboxMessage.status == OutboxStatus.PENDING.value,
    )
    chats = list(
        await session.scalars(
            select(DeliveryChat)
            .where(DeliveryChat.channel == channel, DeliveryChat.next_at <= horizon)
            .where(waiting_here.where(OutboxMessage.not_before <= horizon).exists())
            # Answers the chat waits for go before notifications.
            .order_by(
                waiting_here.where(OutboxMessage.reply.is_(True)).exists().desc(),
                DeliveryChat.next_at,
            )
            .limit(capacity)
        )
    )
    if not chats:
        return []
    # The oldest pending message of each chat, due or not: a chat's messages keep their order,
    # so one waiting for a retry holds back the ones queued after it (a file aside).
    first = (
        select(OutboxMessage.chat_id, func.min(OutboxMessage.id))
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.chat_id.in_([chat.chat_id for chat in chats]),
            OutboxMessage.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value]),
            not_(stepped_aside(now)),
        )
        .group_by(OutboxMessage.chat_id)
    )
    oldest: dict[str, int] = {
        chat_id: message_id for chat_id, message_id in await session.execute(first)
    }
    messages = {
        message.id: message
        for message in await session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(oldest.values()))
        )
    }
    claimed: list[Claimed] = []
    for chat in chats:
        message = messages.get(oldest.get(chat.chat_id, -1))
        if message is None or message.status != OutboxStatus.PENDING.value:
            continue  # the chat's oldest message is in flight (or gone): wait for it
        slot = max(cursor, chat.next_at, message.not_before)
        if slot > horizon:
            continue
        chat.next_at = slot + dt.timedelta(seconds=pacing.interval(chat.chat_id))
        message.status = OutboxStatus.SENDING.value
        message.leased_by = worker
        message.lease_until = slot + pacing.lease
        cursor = max(cursor, slot) + step
        claimed.append(
            Claimed(
                message.id,
                message.chat_id,
                message.text,
                message.choices,
                message.document_name,
                message.document,
                slot,
                message.attempts,
                message.keyboard,
                message.reply,
                message.template,
                message.user_id,
                message.key,
            )
        )
    budget.next_slot_at = cursor
    return claimed


@dataclass
class Results:
    """What happened to a batch of sends, written back in a few statements."""

    sent: list[tuple[int, str]] = field(default_factory=list)  # (outbox id, Telegram id)
    chat_sent: list[tuple[str, dt.datetime]] = field(default_factory=list)  # (chat, when)
    retry: list[tuple[int, dt.datetime]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    # Held back by the channel's rules (ZNS sending hours, the day's quota), not failed: due
    # again then, without counting as an attempt.
    deferred: list[tuple[int, dt.datetime]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sent or self.retry or self.failed or self.deferred)


async def record(
    session: AsyncSession, channel: str, results: Results, now: dt.datetime, pacing: Pacing
) -> None:
    # Core UPDATEs with many parameter sets: one round trip per kind of result. Rows in the
    # order of their keys, as the claim's flush updates them (the unit of work sorts by primary
    # key): two transactions locking the same chats in different orders deadlock (PostgreSQL
    # found one in the conversation benchmark, a results write against a claim).
    table = cast(Table, OutboxMessage.__table__)
    chats = cast(Table, DeliveryChat.__table__)
    if results.chat_sent:
        latest: dict[str, dt.datetime] = {}
        for chat, when in results.chat_sent:
            latest[chat] = max(when, latest.get(chat, when))
        await session.execute(
            chats.update()
            .where(
                chats.c.channel == channel,
                chats.c.chat_id == bindparam("chat"),
                chats.c.next_at < bindparam("earliest"),
            )
            .values(next_at=bindparam("earliest")),
            [
                {"chat": chat, "earliest": when + dt.timedelta(seconds=pacing.interval(chat))}
                for chat, when in sorted(latest.items())
            ],
        )
    if results.sent:
        await session.execute(
            table.update()
            .where(table.c.id == bindparam("row"))
            .values(
                status=OutboxStatus.SENT.value,
                message_id=bindparam("sent_id"),
                sent_at=now,
                lease_until=None,
                error=None,
            ),
            [{"row": row, "sent_id": sent_id} for row, sent_id in sorted(results.sent)],
        )
    if results.retry:
        await session.execute(
            table.update()
            .where(table.c.id == bindparam("row"))
            .values(
                status=OutboxStatus.PENDING.value,
                attempts=table.c.attempts + 1,
                not_before=bindparam("retry_at"),
                lease_until=None,
                leased_by=None,
            ),
            [{"row": row, "retry_at": when} for row, when in sorted(results.retry)],
        )
    if results.deferred:
        await session.execute(
            table.update()
            .where(table.c.id == bindparam("row"))
            .values(
                status=OutboxStatus.PENDING.value,
                not_before=bindparam("due"),
                lease_until=None,
                leased_by=None,
            ),
            [{"row": row, "due": when} for row, when in sorted(results.deferred)],
        )
    if results.failed:
        await session.execute(
            table.update()
            .where(table.c.id == bindparam("row"))
            .values(
                status=OutboxStatus.FAILED.value,
                attempts=table.c.attempts + 1,
                lease_until=None,
                error=bindparam("reason"),
            ),
            [{"row": row, "reason": reason[:500]} for row, reason in sorted(results.failed)],
        )


async def undelivered(session: AsyncSession) -> int:
    """How many messages are still to be sent (waiting, or being sent), over all channels."""
    left = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value]))
    )
    return int(left or 0)


async def mark_unreachable(
    session: AsyncSession, channel: str, chat_id: str, now: dt.datetime
) -> None:
    """The user blocked the bot: stop sending to them, and remember it for the officials."""
    await session.execute(
        update(User)
        .where(User.channel == channel, User.chat_id == chat_id, User.reachable.is_(True))
        .values(reachable=False, unreachable_since=now)
    )
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.chat_id == chat_id,
            OutboxMessage.status == OutboxStatus.PENDING.value,
        )
        .values(status=OutboxStatus.FAILED.value, error="recipient blocked the bot")
    )


async def delay_channel(session: AsyncSession, channel: str, until: dt.datetime) -> None:
    """A flood-control answer: no slot of this channel before `until`."""
    await session.execute(
        update(DeliveryBudget)
        .where(DeliveryBudget.channel == channel, DeliveryBudget.next_slot_at < until)
        .values(next_slot_at=until)
    )


async def forget_delivered(session: AsyncSession, before: dt.datetime, limit: int = 5000) -> int:
    """Delete up to `limit` messages (with their attachments) sent or given up before `before`;
    returns how many. Reminders stay: their keys are what makes each go out once, and they
    carry a product and a date, nothing personal."""
    old = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status.in_([OutboxStatus.SENT.value, OutboxStatus.FAILED.value]),
            OutboxMessage.created_at < before,
            ~OutboxMessage.key.startswith("reminder:"),
        )
        .limit(limit)
    )
    result = await session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id.in_(old))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_buttons(
    session: AsyncSession, channel: str, chat_ids: Collection[str]
) -> dict[str, str]:
    """Per chat, the channel's id of its last sent message when that is an answer with
    buttons: the question before the one being asked now, whose buttons are spent. One
    statement for a batch's chats. Sent messages are written by the delivery in its own
    transactions, so nothing pending here can change the answer: no autoflush."""
    if not chat_ids:
        return {}
    last = (
        select(func.max(OutboxMessage.id))
        .where(
            OutboxMessage.channel == channel,
            OutboxMessage.chat_id.in_(chat_ids),
            OutboxMessage.status == OutboxStatus.SENT.value,
        )
        .group_by(OutboxMessage.chat_id)
    )
    with session.no_autoflush:
        rows = await session.execute(
            select(
                OutboxMessage.chat_id,
                OutboxMessage.reply,
                OutboxMessage.choices,
                OutboxMessage.message_id,
            ).where(OutboxMessage.id.in_(last))
        )
    return {
        row.chat_id: str(row.message_id)
        for row in rows
        if row.reply and row.choices and row.message_id
    }


async def sent_reminders(
    session: AsyncSession, certificate_ids: Collection[int], stages: Collection[int]
) -> dict[int, list[tuple[int, dt.datetime]]]:
    """Per certificate, the reminders actually sent: (stage, when)."""
    wanted = [
        keys.message(keys.reminder(certificate_id, stage), 0)
        for certificate_id in certificate_ids
        for stage in stages
    ]
    sent: dict[int, list[tuple[int, dt.datetime]]] = {}
    if not wanted:
        return sent
    rows = await session.execute(
        select(OutboxMessage.key, OutboxMessage.sent_at).where(
            OutboxMessage.key.in_(wanted), OutboxMessage.status == OutboxStatus.SENT.value
        )
    )
    for key, sent_at in rows:
        parsed = keys.parse_reminder(key)
        if parsed is not None and sent_at is not None:
            sent.setdefault(parsed[0], []).append((parsed[1], sent_at))
    return sent
