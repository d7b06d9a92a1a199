"""The inbox: every incoming update, recorded before the channel is told it arrived.

A receiver (polling or webhook, any channel) inserts updates here and commits before it
acknowledges them; the runtime takes the oldest pending update of each chat, handles it, and
deletes it in the transaction of its effect (`take_turns`). So an update is either still here,
or handled and its replies in the outbox: a crash loses neither. `processed_updates` keeps the
ids of handled ones, so a redelivery recorded again does nothing new.

Updates over a sender's rate (bot/fairness.py) are kept as `excess`, for the record, and pruned
after a week with the handled ids.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Index,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from models.base import Base, insert_for

# Set in the payload of the first update over its sender's rate: kept pending, so that the one
# notice about the flood is answered in the chat's order, after the messages before it.
EXCESS_NOTICE = "ocop_excess_notice"


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    EXCESS = "excess"  # over the sender's rate: recorded, answered once, not handled


class InboxUpdate(Base):
    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("channel", "update_id"),
        # The scheduler asks for the oldest pending update of each chat.
        Index("ix_inbox_queue", "status", "channel", "chat_id", "id"),
        # An id is never handed out twice (the worker knows what it holds by id): migration 0013.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING)
    received_at: Mapped[dt.datetime] = mapped_column(index=True)


@dataclass(frozen=True)
class Incoming:
    """One update as a receiver got it: its id, whose chat it is, and the channel's JSON."""

    channel: str
    update_id: str
    chat_id: str
    user_id: str
    payload: dict[str, Any]
    # What the channel decoded the payload to, when it had to decode it to key it: kept in
    # memory with the update, so the worker need not decode it again. Never stored.
    decoded: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Pending:
    id: int
    channel: str
    update_id: str
    chat_id: str
    user_id: str
    payload: dict[str, Any]
    decoded: Any = field(default=None, compare=False, repr=False)  # as in Incoming


async def record(
    session: AsyncSession,
    updates: Sequence[Incoming],
    now: dt.datetime,
    status: InboxStatus = InboxStatus.PENDING,
) -> list[Pending]:
    """Insert updates not recorded before (a redelivery is ignored); returns the new ones.

    On PostgreSQL two receivers may record one chat's updates at once (webhook requests in
    parallel, several processes behind one address): each takes the chat's recording lock
    first (`lock_chats` on a name of its own, so recording never waits for handling), and a
    chat's ids follow the order its updates were committed in. Otherwise the later insert
    could commit first, be handled, and the earlier one come after it with a lower id, past
    the check that a chat's oldest update goes first (`take_turns`)."""
    if not updates:
        return []
    if status is InboxStatus.PENDING:  # excess updates are never handled: no order to keep
        # (and one set of locks per transaction, taken in one order: no deadlock)
        await lock_chats(session, [(f"{u.channel}/recording", u.chat_id) for u in updates])
    table = cast(Table, InboxUpdate.__table__)
    rows = [
        {
            "channel": update.channel,
            "update_id": update.update_id,
            "chat_id": update.chat_id,
            "user_id": update.user_id,
            "payload": update.payload,
            "status": status.value,
            "received_at": now,
        }
        for update in updates
    ]
    connection = await session.connection()
    insert = insert_for(session)
    new = await connection.execute(
        insert(table)
        .on_conflict_do_nothing()
        .returning(table.c.id, table.c.channel, table.c.update_id),
        rows,
    )
    ids = {(channel, update_id): row_id for row_id, channel, update_id in new}
    return [
        Pending(ids[key], u.channel, u.update_id, u.chat_id, u.user_id, u.payload, u.decoded)
        for u in updates
        if (key := (u.channel, u.update_id)) in ids
    ]


async def next_pending(
    session: AsyncSession, limit: int, busy: set[tuple[str, str]] | frozenset[tuple[str, str]]
) -> list[Pending]:
    """The oldest pending update of each chat, oldest chats first, skipping `busy` chats: a
    chat with a backlog of thousands gets one turn like everyone else."""
    firsts = (
        select(func.min(InboxUpdate.id).label("id"), InboxUpdate.channel, InboxUpdate.chat_id)
        .where(InboxUpdate.status == InboxStatus.PENDING.value)
        .group_by(InboxUpdate.channel, InboxUpdate.chat_id)
        .order_by(func.min(InboxUpdate.id))
        .limit(limit + len(busy))
    )
    wanted = [
        row.id for row in await session.execute(firsts) if (row.channel, row.chat_id) not in busy
    ]
    if not wanted:
        return []
    rows = await session.scalars(
        select(InboxUpdate).where(InboxUpdate.id.in_(wanted[:limit])).order_by(InboxUpdate.id)
    )
    return [
        Pending(row.id, row.channel, row.update_id, row.chat_id, row.user_id, row.payload)
        for row in rows
    ]


async def pending_of(
    session: AsyncSession, channel: str, chat_id: str, limit: int
) -> list[Pending]:
    """A chat's oldest pending updates, in order."""
    rows = await session.scalars(
        select(InboxUpdate)
        .where(
            InboxUpdate.status == InboxStatus.PENDING.value,
            InboxUpdate.channel == channel,
            InboxUpdate.chat_id == chat_id,
        )
        .order_by(InboxUpdate.id)
        .limit(limit)
    )
    return [
        Pending(row.id, row.channel, row.update_id, row.chat_id, row.user_id, row.payload)
        for row in rows
    ]


def chat_lock_key(channel: str, chat_id: str) -> int:
    """A signed 64-bit number naming a chat, for PostgreSQL's advisory locks."""
    digest = hashlib.blake2b(f"{channel}:{chat_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_chats(session: AsyncSession, chats: Sequence[tuple[str, str]]) -> None:
    """One process at a time per chat: on PostgreSQL, transaction-scoped advisory locks, taken
    in one order by everyone so two batches never wait for each other in a circle. SQLite
    serves one process, whose batches never share a chat (bot/batch.py)."""
    if session.get_bind().dialect.name != "postgresql" or not chats:
        return
    keys = sorted({chat_lock_key(*chat) for chat in chats})
    await session.execute(_LOCK_ALL, {"keys": keys})


# Transaction-scoped advisory locks on these keys, taken in the order given.
_LOCK_ALL = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")


_OLDER = aliased(InboxUpdate)
_TAKE_TURNS = (
    delete(InboxUpdate)
    .where(
        InboxUpdate.id.in_(bindparam("ids", expanding=True)),
        ~select(_OLDER.id)
        .where(
            _OLDER.status == InboxStatus.PENDING.value,
            _OLDER.channel == InboxUpdate.channel,
            _OLDER.chat_id == InboxUpdate.chat_id,
            _OLDER.id < InboxUpdate.id,
        )
        .exists(),
    )
    .returning(InboxUpdate.id)
)


async def take_turns(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    """Of these inbox rows, delete and return those that are their chat's oldest pending one.

    Called under the chats' locks, in the transaction that handles them: a row already gone was
    handled by another process; a row with an older one before it must wait for it. SQLite too:
    its one process offers each chat's updates in order, and this is what makes a slip there
    (an update recorded while a restart's backlog is read back) a wait instead of a reply to
    the wrong question. One statement, on the queue's index."""
    if not ids:
        return set()
    # Built once, on the connection (a Core DELETE: the ORM's bulk delete only adds its own
    # bookkeeping to it, and building the statement per batch cost as much as running it).
    connection = await session.connection()
    gone = await connection.execute(_TAKE_TURNS, {"ids": list(ids)})
    return {row_id for (row_id,) in gone}


async def drop(session: AsyncSession, ids: Sequence[int]) -> None:
    """Forget updates that will never be handled (nothing to do for them, or given up)."""
    if ids:
        await session.execute(delete(InboxUpdate).where(InboxUpdate.id.in_(ids)))


async def waiting(session: AsyncSession) -> int:
    """How many updates wait to be handled, over all channels."""
    count = await session.scalar(
        select(func.count())
        .select_from(InboxUpdate)
        .where(InboxUpdate.status == InboxStatus.PENDING.value)
    )
    return int(count or 0)


async def forget_excess(session: AsyncSession, before: dt.datetime, limit: int = 5000) -> int:
    """Drop up to `limit` excess updates recorded before `before`; returns how many."""
    oldest = (
        select(InboxUpdate.id)
        .where(InboxUpdate.status == InboxStatus.EXCESS.value, InboxUpdate.received_at < before)
        .limit(limit)
    )
    result = await session.execute(delete(InboxUpdate).where(InboxUpdate.id.in_(oldest)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
