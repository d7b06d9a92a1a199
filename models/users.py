"""People who talk to the bot, identified per channel, with their language and role."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_if_absent, utcnow
from models.domain import Role

DEFAULT_LANGUAGE = "vi"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("channel", "channel_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    channel_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default=DEFAULT_LANGUAGE)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=Role.PRODUCER,
    )
    phone: Mapped[str | None] = mapped_column(String(20))
    # An official's communes; None means the whole area. Meaningless for producers.
    scope: Mapped[list[str] | None] = mapped_column(JSON)
    # False once the user blocked the bot; back to True when they write again.
    reachable: Mapped[bool] = mapped_column(default=True)
    unreachable_since: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProcessedUpdate(Base):
    """Ids of incoming updates already handled, so a redelivered update does nothing twice."""

    __tablename__ = "processed_updates"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    processed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


async def get_or_create_user(
    session: AsyncSession,
    channel: str,
    channel_user_id: str,
    *,
    chat_id: str,
    display_name: str = "",
    username: str | None = None,
) -> User:
    user = await session.scalar(
        select(User).where(User.channel == channel, User.channel_user_id == channel_user_id)
    )
    if user is None:
        user = User(
            channel=channel,
            channel_user_id=channel_user_id,
            chat_id=chat_id,
            display_name=display_name[:200],
            username=username,
            language=DEFAULT_LANGUAGE,
            role=Role.PRODUCER,
            reachable=True,
        )
        session.add(user)
        await session.flush()
    else:
        # Keep contact details current without a write when nothing changed.
        if user.chat_id != chat_id:
            user.chat_id = chat_id
        if display_name and user.display_name != display_name[:200]:
            user.display_name = display_name[:200]
        if username and user.username != username:
            user.username = username
        if not user.reachable:  # they wrote to us, so they unblocked the bot
            user.reachable, user.unreachable_since = True, None
    return user


async def claim_update(
    session: AsyncSession, channel: str, update_id: str, user_id: int | None
) -> bool:
    """Record an update as handled; False when it already was (a redelivery)."""
    return await insert_if_absent(
        session,
        ProcessedUpdate,
        channel=channel,
        update_id=update_id,
        user_id=user_id,
        processed_at=utcnow(),
    )
