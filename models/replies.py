"""Replies in the outbox: written in the transaction of the event that caused them, leased to
the process that handled it so that they leave at once, and the leases that keep a message in
one process's hands while it is being sent (renewed, handed back, released at a start).

Notifications and everything handed back go through `models.outbox.claim` instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import insert_for
from models.outbox import Claimed, DeliveryChat, OutboxMessage, OutboxStatus, stepped_aside


@dataclass(frozen=True)
class Outgoing:
    """A reply to write to the outbox in the transaction of the event that caused it."""

    key: str
    channel: str
    chat_id: str
    user_id: int | None
    text: str
    choices: list[Any] | None = None
    keyboard: dict[str, Any] | None = None
    document_name: str | None = None
    document: bytes | None = None


async def queue_replies(
    session: AsyncSession,
    replies: Sequence[Outgoing],
    now: dt.datetime,
    *,
    worker: str | None,
    lease: dt.timedelta,
    known_chats: set[tuple[str, str]] | None = None,
    room: int | None = None,
) -> tuple[list[Claimed], dict[str, int], bool]:
    """Write an event batch's replies, in one statement; returns those leased to `worker` to
    send at once (every reply of a chat with no earlier message waiting, or in another
    process's hands; a chat that has one gets its replies queued behind it, in order) and the
    outbox id of every new one by key, and whether some were queued for want of room. At most
    `room` replies are leased (a chat's replies all or none; the chats that do not fit are
    queued, to be claimed in their turn); with no `worker`, none. A key already queued (the
    same event handled again) is skipped. `known_chats`, when given, remembers the chats that
    have their delivery row, so that it is inserted once per chat rather than once per batch."""
    if not replies:
        return [], {}, False
    channels = {reply.channel for reply in replies}
    behind: set[tuple[str, str]] = set()
    for channel in channels if worker is not None else ():  # none leased: no need to look
        chats = list({reply.chat_id for reply in replies if reply.channel == channel})
        rows = await session.execute(
            select(OutboxMessage.chat_id)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id.in_(chats),
                or_(
                    OutboxMessage.status == OutboxStatus.PENDING.value,
                    (OutboxMessage.status == OutboxStatus.SENDING.value)
                    & (OutboxMessage.leased_by != worker),
                ),
                not_(stepped_aside(now)),
            )
            .distinct()
        )
        behind.update((channel, chat_id) for (chat_id,) in rows)
    table = cast(Table, OutboxMessage.__table__)
    if worker is None:
        room = 0
    leased: set[tuple[str, str]] = set()
    overflow = False
    rows_in = []
    for reply in replies:
        chat = (reply.channel, reply.chat_id)
        if chat not in behind and chat not in leased:
            if room is None or room > 0:
                leased.add(chat)
            else:
                behind.add(chat)
                overflow = True
        queued = chat in behind
        if not queued and room is not None:
            room -= 1
        rows_in.append(
            {
                "key": reply.key,
                "channel": reply.channel,
                "chat_id": reply.chat_id,
                "user_id": reply.user_id,
                "text": reply.text,
                "choices": reply.choices,
                "keyboard": reply.keyboard,
                "reply": True,
                "document_name": reply.document_name,
                "document": reply.document,
                "status": (OutboxStatus.PENDING if queued else OutboxStatus.SENDING).value,
                "attempts": 0,
                "not_before": now,
                "lease_until": None if queued else now + lease,
                "leased_by": None if queued else worker,
                "created_at": now,
            }
        )
    connection = await session.connection()
    insert = insert_for(session)
    new = await connection.execute(
        insert(table).on_conflict_do_nothing().returning(table.c.id, table.c.key), rows_in
    )
    ids = {key: row_id for row_id, key in new}
    replied = {(reply.channel, reply.chat_id) for reply in replies}
    unknown = replied if known_chats is None else replied - known_chats
    if unknown:
        await connection.execute(
            insert(cast(Table, DeliveryChat.__table__)).on_conflict_do_nothing(),
            [{"channel": channel, "chat_id": chat, "next_at": now} for channel, chat in unknown],
        )
    fast = [
        Claimed(
            ids[reply.key],
            reply.chat_id,
            reply.text,
            reply.choices,
            reply.document_name,
            reply.document,
            now,
            0,
            reply.keyboard,
            True,
        )
        for reply in replies
        if reply.key in ids and (reply.channel, reply.chat_id) not in behind
    ]
    return fast, ids, overflow


async def replies_waiting(session: AsyncSession, channel: str) -> bool:
    """Whether any reply of the channel waits in the queue (not leased to anyone)."""
    waiting = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING.value,
            OutboxMessage.channel == channel,
            OutboxMessage.reply.is_(True),
        )
        .exists()
    )
    return bool(await session.scalar(select(waiting)))


async def release_leases(session: AsyncSession, channel: str, worker: str | None = None) -> int:
    """Messages leased but not sent go back to the queue: those of `worker` (stopping), or,
    with None, everyone's (a SQLite bot starting: no other process can be sending)."""
    condition = (OutboxMessage.channel == channel) & (
        OutboxMessage.status == OutboxStatus.SENDING.value
    )
    if worker is not None:
        condition = condition & (OutboxMessage.leased_by == worker)
    result = await session.execute(
        update(OutboxMessage)
        .where(condition)
        .values(status=OutboxStatus.PENDING.value, leased_by=None, lease_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def extend_leases(
    session: AsyncSession, ids: Sequence[int], worker: str, until: dt.datetime
) -> None:
    """The messages `worker` is still sending stay its own until `until`."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.leased_by == worker,
                OutboxMessage.status == OutboxStatus.SENDING.value,
            )
            .values(lease_until=until)
        )


async def hand_back(session: AsyncSession, ids: Sequence[int]) -> None:
    """Leased messages that were not tried go back to the queue as they were."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == OutboxStatus.SENDING.value)
            .values(status=OutboxStatus.PENDING.value, leased_by=None, lease_until=None)
        )
