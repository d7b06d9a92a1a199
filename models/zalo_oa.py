"""What the Zalo Official Account channel keeps: its OAuth tokens (encrypted by the caller), each
chat's last interaction (the customer-service window), and the outcome of every send."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, LargeBinary, String, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.outbox import OutboxMessage, OutboxStatus
from models.registrations import Registration, Subject
from models.users import User


class OAuthToken(Base):
    """A channel's access and refresh tokens, as ciphertext (Fernet, key from the settings).

    `version` grows with every refresh: a refresh token is good once, so a process writes its
    new pair only if nobody refreshed in between (otherwise it takes theirs)."""

    __tablename__ = "oauth_tokens"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes] = mapped_column(LargeBinary)
    access_expires_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime]


class OAChat(Base):
    """A person's chat with the OA: when they last wrote (or followed), and whether they follow."""

    __tablename__ = "zalo_oa_chats"

    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_interaction_at: Mapped[dt.datetime]
    following: Mapped[bool] = mapped_column(default=True)


class OASend(Base):
    """Every attempt to deliver an outbox message over the OA: as a customer-service message
    (`cs`) or a ZNS template message (`zns`), and what came of it."""

    __tablename__ = "zalo_oa_sends"
    __table_args__ = (Index("ix_zalo_oa_sends_quota", "route", "status", "local_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(8))  # cs | zns
    # sent | failed | deferred (hours, quota) | fallback (handed to another channel)
    status: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[str | None] = mapped_column(String(32))
    phone_tail: Mapped[str | None] = mapped_column(String(4))  # never the whole number
    tracking_id: Mapped[str | None] = mapped_column(String(48))
    error_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[str | None] = mapped_column(String(64))
    local_day: Mapped[dt.date] = mapped_column(Date)  # the OA's quota day (OCOP_TIMEZONE)
    created_at: Mapped[dt.datetime]


async def touch_chat(
    session: AsyncSession, chat_id: str, now: dt.datetime, *, following: bool = True
) -> None:
    """The person wrote (or followed) at `now`: their window opens again; messages waiting for
    it (outside the ZNS hours, or for the quota) may go at once, as ordinary messages."""
    due = utcnow()  # the outbox is timed on the delivery's clock
    chat = await session.get(OAChat, chat_id)
    if chat is None:
        session.add(OAChat(chat_id=chat_id, last_interaction_at=now, following=following))
    else:
        chat.last_interaction_at = max(chat.last_interaction_at, now)
        chat.following = chat.following or following
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == "zalo_oa",
            OutboxMessage.chat_id == chat_id,
            OutboxMessage.status == OutboxStatus.PENDING.value,
            OutboxMessage.not_before > due,
        )
        .values(not_before=due)
    )


async def unfollowed(session: AsyncSession, chat_id: str, now: dt.datetime) -> None:
    """The person stopped following the OA: nothing more is sent to them there."""
    chat = await session.get(OAChat, chat_id)
    if chat is None:
        session.add(OAChat(chat_id=chat_id, last_interaction_at=now, following=False))
    else:
        chat.following = False
    await session.execute(
        update(User)
        .where(User.channel == "zalo_oa", User.chat_id == chat_id, User.reachable.is_(True))
        .values(reachable=False, unreachable_since=now)
    )


async def last_interaction(session: AsyncSession, chat_id: str) -> OAChat | None:
    return await session.get(OAChat, chat_id, populate_existing=True)


async def phone_of(session: AsyncSession, channel: str, chat_id: str) -> str | None:
    """The phone number the person gave (E.164): shared with the bot, else on their latest
    registration, else on a producer record they own."""
    user = await session.scalar(
        select(User).where(User.channel == channel, User.chat_id == chat_id).limit(1)
    )
    if user is None:
        return None
    if user.phone:
        return user.phone
    given = await session.scalar(
        select(Registration.phone)
        .where(Registration.submitted_by_user_id == user.id)
        .order_by(Registration.id.desc())
        .limit(1)
    )
    if given:
        return given
    return await session.scalar(
        select(Subject.phone)
        .where(Subject.owner_user_id == user.id, Subject.phone.is_not(None))
        .order_by(Subject.id.desc())
        .limit(1)
    )


async def zns_sent_on(session: AsyncSession, day: dt.date, *, in_flight: bool = False) -> int:
    """ZNS messages sent on the OA's quota day `day` (and, with `in_flight`, being sent)."""
    statuses = ["sent", "sending"] if in_flight else ["sent"]
    count = await session.scalar(
        select(func.count())
        .select_from(OASend)
        .where(OASend.route == "zns", OASend.status.in_(statuses), OASend.local_day == day)
    )
    return int(count or 0)


async def reserve_zns(session: AsyncSession, send: OASend, quota: int) -> bool:
    """Take one of the day's ZNS messages for `send` (added with status "sending"); False when
    the quota is used up. Concurrent senders count one at a time: SQLite's write transactions
    are serialized already, PostgreSQL's wait for a lock on the quota."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('zns-quota'))"))
    if await zns_sent_on(session, send.local_day, in_flight=True) >= quota:
        return False
    session.add(send)
    await session.flush()
    return True


async def other_channels(session: AsyncSession, channel: str, chat_id: str) -> list[User]:
    """The same person on the bot's other channels, found by the phone number they gave."""
    phone = await phone_of(session, channel, chat_id)
    if not phone:
        return []
    found = await session.scalars(
        select(User)
        .where(User.phone == phone, User.channel != channel, User.reachable.is_(True))
        .order_by(User.id)
    )
    users = list(found)
    if users:
        return users
    registered = select(Registration.submitted_by_user_id).where(Registration.phone == phone)
    owners = await session.scalars(
        select(User)
        .where(User.id.in_(registered), User.channel != channel, User.reachable.is_(True))
        .order_by(User.id)
    )
    return list(owners)


async def store_tokens(
    session: AsyncSession,
    channel: str,
    version: int,
    *,
    access_token: bytes,
    refresh_token: bytes,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Replace the sealed tokens if they are still at `version` (another process may have
    refreshed them first); True when written."""
    written = await session.execute(
        update(OAuthToken)
        .where(OAuthToken.channel == channel, OAuthToken.version == version)
        .values(
            access_token=access_token,
            refresh_token=refresh_token,
            access_expires_at=expires_at,
            version=version + 1,
            updated_at=now,
        )
    )
    return bool(written.rowcount)  # type: ignore[attr-defined]
