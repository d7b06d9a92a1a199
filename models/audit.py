"""Audit log of privileged actions and refused attempts: who, what, when."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.users import User


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500), default="")
    allowed: Mapped[bool]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


def record(session: AsyncSession, user: User, action: str, detail: str, allowed: bool) -> None:
    session.add(AuditEntry(user_id=user.id, action=action, detail=detail[:500], allowed=allowed))
