"""People who talk to the bot, identified per channel, with their language and role."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    String,
    UniqueConstraint,
    bindparam,
    column,
    delete,
    exists,
    select,
    table,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_for, utcnow
from models.domain import Role

DEFAULT_LANGUAGE = "vi"

Key = tuple[str, str]  # (channel, channel user id)


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
    # The version of the personal-data notice this user agreed to; None: never, or withdrawn.
    consent_version: Mapped[int | None]
    # An official who turned off the messages telling them of arrived registrations (/thongbao).
    arrival_notices: Mapped[bool] = mapped_column(default=True, server_default=true())

    @property
    def keeps_profile(self) -> bool:
        """Whether the channel's name and username may be stored: officials need theirs to be
        found and listed; a producer's only after agreeing to the notice."""
        return self.role is not Role.PRODUCER or self.consent_version is not None


class ProcessedUpdate(Base):
    """Ids of incoming updates already handled, so a redelivered update does nothing twice."""

    __tablename__ = "processed_updates"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    processed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


@dataclass(frozen=True)
class Profile:
    """Who sent an event, as the channel describes them."""

    channel: str
    channel_user_id: str
    chat_id: str
    display_name: str = ""
    username: str | None = None


def _new_user(profile: Profile) -> User:
    # A newcomer has agreed to nothing yet: their name and username are not kept.
    return User(
        channel=profile.channel,
        channel_user_id=profile.channel_user_id,
        chat_id=profile.chat_id,
        display_name="",
        username=None,
        language=DEFAULT_LANGUAGE,
        role=Role.PRODUCER,
        reachable=True,
    )


def touch_user(user: User, profile: Profile) -> None:
    """Keep contact details current, without a write when nothing changed."""
    if user.chat_id != profile.chat_id:
        user.chat_id = profile.chat_id
    if user.keeps_profile:
        remember_profile(user, profile)
    if not user.reachable:  # they wrote to us, so they unblocked the bot
        user.reachable, user.unreachable_since = True, None


def remember_profile(user: User, profile: Profile) -> None:
    if profile.display_name and user.display_name != profile.display_name[:200]:
        user.display_name = profile.display_name[:200]
    if profile.username and user.username != profile.username:
        user.username = profile.username


# The registrations table by its name (models/registrations.py imports this module).
_REGISTRATIONS = table("registrations", column("submitted_by_user_id"))
# Built once: constructing the statement per batch cost as much as running it. With each
# sender, whether they ever registered: a producer who never did has no details to offer
# again, and `/dangky` need not look for them (a statement per registration, bench/README.md).
_USERS = select(
    User, exists().where(_REGISTRATIONS.c.submitted_by_user_id == User.id).label("registered")
).where(
    User.channel == bindparam("channel"),
    User.channel_user_id.in_(bindparam("ids", expanding=True)),
)


async def users_for(
    session: AsyncSession, profiles: Sequence[Profile], registered: set[int] | None = None
) -> dict[Key, User]:
    """Many senders at once, by (channel, channel user id): one SELECT, and one INSERT for all
    the new ones. `registered`, when given, gets the ids of those who ever registered."""
    users: dict[Key, User] = {}
    for channel in {profile.channel for profile in profiles}:
        ids = [p.channel_user_id for p in profiles if p.channel == channel]
        found = await session.execute(_USERS, {"channel": channel, "ids": ids})
        for user, has_registered in found:
            users[(user.channel, user.channel_user_id)] = user
            if has_registered and registered is not None:
                registered.add(user.id)
    fresh = []
    for profile in profiles:
        key = (profile.channel, profile.channel_user_id)
        if key in users:
            touch_user(users[key], profile)
        else:
            users[key] = _new_user(profile)
            fresh.append(users[key])
    if fresh:
        session.add_all(fresh)
        await session.flush()
    return users


async def claim_updates(
    session: AsyncSession, claims: Sequence[tuple[str, str, int | None]]
) -> set[tuple[str, str]]:
    """Record many (channel, update id, user id) as handled in one statement; returns the
    (channel, update id) pairs that were new (the others are redeliveries)."""
    if not claims:
        return set()
    now = utcnow()
    rows = [
        {"channel": channel, "update_id": update_id, "user_id": user_id, "processed_at": now}
        for channel, update_id, user_id in claims
    ]
    insert = insert_for(session)
    # Core on the session's connection, rows as parameters: compiled once and cached, without
    # the ORM's bulk-insert bookkeeping, and still one multi-row INSERT ("insertmanyvalues").
    table = ProcessedUpdate.__table__
    connection = await session.connection()
    new = await connection.execute(
        insert(table).on_conflict_do_nothing().returning(table.c.channel, table.c.update_id),
        rows,
    )
    return {(channel, update_id) for channel, update_id in new}


async def forget_updates(session: AsyncSession, before: dt.datetime, limit: int = 5000) -> int:
    """Drop the record of up to `limit` updates handled before `before` (no channel redelivers
    that late); returns how many. Callers repeat in fresh transactions until it returns less, so
    a long backlog never holds the write lock for long."""
    oldest = (
        select(ProcessedUpdate.channel, ProcessedUpdate.update_id)
        .where(ProcessedUpdate.processed_at < before)
        .limit(limit)
    )
    key = tuple_(ProcessedUpdate.channel, ProcessedUpdate.update_id)
    result = await session.execute(delete(ProcessedUpdate).where(key.in_(oldest)))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def reachable_users(session: AsyncSession, ids: Collection[int]) -> dict[int, User]:
    """The users among `ids` whom messages still reach, by id."""
    if not ids:
        return {}
    found = await session.scalars(select(User).where(User.id.in_(ids), User.reachable.is_(True)))
    return {user.id: user for user in found}


async def language_of(session: AsyncSession, channel: str, chat_id: str) -> str | None:
    """The language of the person in a chat (None: not known yet)."""
    return await session.scalar(
        select(User.language).where(User.channel == channel, User.chat_id == chat_id).limit(1)
    )
