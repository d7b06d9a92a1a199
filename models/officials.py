"""Officials and admins: roles, communes in scope, one-time invites."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import JSON, Enum, ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.domain import Role
from models.users import User


class Invite(Base):
    """A one-time code in a t.me/<bot>?start=<code> link: it makes its user an official, or,
    with a certificate, gives its user that certificate's product (a claim link). Only the
    code's hash is stored, so whoever reads the database (or a backup) cannot use the links."""

    __tablename__ = "invites"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    scope: Mapped[list[str] | None] = mapped_column(JSON)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    used_at: Mapped[dt.datetime | None]
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))


INVITE_VALIDITY = dt.timedelta(days=7)


def hash_code(code: str) -> str:
    """The stored form of an invite code. The codes are 96 random bits, so a plain SHA-256 is
    enough: there is nothing to guess that a slow hash would protect."""
    return hashlib.sha256(code.encode()).hexdigest()


def in_scope(user: User, commune_code: str) -> bool:
    return user.role is Role.ADMIN or user.scope is None or commune_code in user.scope


async def find_user(session: AsyncSession, channel: str, reference: str) -> User | None:
    """A user by numeric id or @username, as an admin types it."""
    reference = reference.strip()
    if reference.startswith("@"):
        return await session.scalar(
            select(User).where(User.channel == channel, User.username == reference[1:])
        )
    return await session.scalar(
        select(User).where(User.channel == channel, User.channel_user_id == reference)
    )


async def ensure_admins(session: AsyncSession, channel: str, user_ids: Sequence[int]) -> None:
    """Make the configured ids admins, creating users who never wrote to the bot yet."""
    for user_id in user_ids:
        user = await find_user(session, channel, str(user_id))
        if user is None:
            # On Telegram a private chat's id is the user's id.
            session.add(
                User(
                    channel=channel,
                    channel_user_id=str(user_id),
                    chat_id=str(user_id),
                    display_name="",
                    language="vi",
                    role=Role.ADMIN,
                )
            )
        elif user.role is not Role.ADMIN:
            user.role = Role.ADMIN
            user.scope = None


async def officials(session: AsyncSession, channel: str | None = None) -> list[User]:
    query = select(User).where(User.role.in_([Role.OFFICIAL, Role.ADMIN]))
    if channel is not None:
        query = query.where(User.channel == channel)
    return list(await session.scalars(query.order_by(User.role, User.id)))


async def create_invite(
    session: AsyncSession,
    creator: User,
    scope: list[str] | None,
    now: dt.datetime,
    certificate_id: int | None = None,
) -> tuple[Invite, str]:
    """A new invite and its code (the code itself is not stored: give it out now)."""
    code = secrets.token_urlsafe(12)
    invite = Invite(
        code_hash=hash_code(code),
        role=Role.OFFICIAL if certificate_id is None else Role.PRODUCER,
        scope=scope,
        created_by_user_id=creator.id,
        created_at=now,
        expires_at=now + INVITE_VALIDITY,
        certificate_id=certificate_id,
    )
    session.add(invite)
    return invite, code


async def redeem_invite(
    session: AsyncSession, code: str, user: User, now: dt.datetime
) -> Invite | None:
    """Use a one-time invite; None when unknown, used or expired. Locks the row (PostgreSQL)."""
    invite = await session.scalar(
        select(Invite)
        .where(Invite.code_hash == hash_code(code.strip()))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if invite is None or invite.used_at is not None or invite.expires_at < now:
        return None
    invite.used_by_user_id, invite.used_at = user.id, now
    if invite.certificate_id is None and user.role is not Role.ADMIN:
        user.role, user.scope = invite.role, invite.scope
    return invite
