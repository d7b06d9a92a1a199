"""Conversation state per chat, written on every step so it survives restarts and crashes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
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
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


async def load_conversation(session: AsyncSession, channel: str, chat_id: str) -> Conversation:
    """The chat's conversation row, created idle when the chat is new."""
    conversation = await session.get(Conversation, (channel, chat_id))
    if conversation is None:
        conversation = Conversation(
            channel=channel, chat_id=chat_id, flow=None, step=None, answers={}, version=0
        )
        session.add(conversation)
    return conversation
