"""Conversation state per chat, written on every step so it survives restarts and crashes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, inspect, null, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Conversation(Base):
    __tablename__ = "conversations"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(32))
    editing: Mapped[bool] = mapped_column(default=False)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the form was started for, which no question asks (handlers.engine.FormMeta).
    meta: Mapped[dict[str, Any] | None] = mapped_column()
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _idle(channel: str, chat_id: str) -> Conversation:
    return Conversation(
        channel=channel, chat_id=chat_id, flow=None, step=None, answers={}, version=0
    )


# Built once: constructing the statement per batch cost as much as running it.
_CONVERSATIONS = select(Conversation).where(
    Conversation.channel == bindparam("channel"),
    Conversation.chat_id.in_(bindparam("ids", expanding=True)),
)


async def conversations_for(
    session: AsyncSession, chats: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Conversation]:
    """Many chats' conversations by (channel, chat id) in one SELECT per channel; the new ones
    are added idle."""
    wanted = set(chats)
    found: dict[tuple[str, str], Conversation] = {}
    for channel in {channel for channel, _chat in wanted}:
        ids = [chat_id for each, chat_id in wanted if each == channel]
        rows = await session.scalars(_CONVERSATIONS, {"channel": channel, "ids": ids})
        found.update(((row.channel, row.chat_id), row) for row in rows)
    for key in wanted - found.keys():
        found[key] = _idle(*key)
        session.add(found[key])
    return found


_TABLE = cast(Table, Conversation.__table__)
_STATE = frozenset(("flow", "step", "editing", "answers", "meta", "version"))
# Built once; the chat's key under names of their own (a SET column's name is taken).
_UPDATE = _TABLE.update().where(
    _TABLE.c.channel == bindparam("of_channel"), _TABLE.c.chat_id == bindparam("of_chat")
)


async def save_conversations(session: AsyncSession, conversations: Iterable[Conversation]) -> None:
    """Write a batch's changed conversations in a few statements (an INSERT of the new chats',
    an UPDATE per set of changed columns of the others', each with many parameter sets) and
    take them out of the session, instead of leaving them to the unit of work: its flush cost
    about 40 µs per conversation, a tenth of an update's CPU (bench/README.md, "conversation").

    As the unit of work would, an UPDATE sets only the columns the batch changed: a column
    another transaction changed meanwhile (a form closed by an admin's /official remove, under
    the chat's lock, `handlers.review.close_review_forms`) is not put back as it was loaded.
    Called once the batch's events are handled: until then they are the session's objects like
    any other (one chat's conversation is one object, whoever reads it in the batch)."""
    now = utcnow()
    new: list[dict[str, Any]] = []
    changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    written: list[Conversation] = []
    for conversation in conversations:
        state = inspect(conversation)
        if state.deleted or state.detached or not (state.key is None or state.modified):
            continue
        written.append(conversation)
        if state.key is None:
            new.append(
                {
                    "channel": conversation.channel,
                    "chat_id": conversation.chat_id,
                    "flow": conversation.flow,
                    "step": conversation.step,
                    "editing": bool(conversation.editing),
                    "answers": conversation.answers if conversation.answers is not None else {},
                    "meta": _json_or_null(conversation.meta),
                    "version": conversation.version or 0,
                    "updated_at": now,
                }
            )
            continue
        columns = tuple(sorted(_STATE.difference(state.unmodified_intersection(_STATE))))
        values = {column: getattr(conversation, column) for column in columns}
        if "meta" in values:
            values["meta"] = _json_or_null(values["meta"])
        changed.setdefault(columns, []).append(
            {"of_channel": conversation.channel, "of_chat": conversation.chat_id, "updated_at": now}
            | values
        )
    connection = await session.connection()
    if new:
        await connection.execute(_TABLE.insert(), new)
    for rows in changed.values():
        await connection.execute(_UPDATE, rows)
    for conversation in written:
        if conversation in session:
            session.expunge(conversation)


def _json_or_null(value: Any) -> Any:
    """SQL NULL for no value, as the unit of work writes it (a plain JSON column would store
    None as JSON's own null)."""
    return null() if value is None else value


async def forget_abandoned_forms(
    session: AsyncSession, before: dt.datetime, limit: int = 5000
) -> int:
    """Empty up to `limit` forms left unfinished since before `before` (their answers may hold
    personal data); returns how many. The row stays, with a new version, so the buttons of the
    abandoned form are refused rather than taken for a new one's."""
    stale = (
        select(Conversation.channel, Conversation.chat_id)
        .where(Conversation.flow.is_not(None), Conversation.updated_at < before)
        .limit(limit)
    )
    result = await session.execute(
        update(Conversation)
        .where(tuple_(Conversation.channel, Conversation.chat_id).in_(stale))
        .values(
            flow=None,
            step=None,
            answers={},
            meta=None,
            editing=False,
            version=Conversation.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
