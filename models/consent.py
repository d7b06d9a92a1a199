"""Consent to the personal-data notice: every decision kept with the notice's version and time
(Law 91/2025/QH15 asks the controller to be able to show it); the user row holds the version
currently agreed to."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.users import User


class Decision(enum.StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class ConsentRecord(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    notice_version: Mapped[int]
    decision: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def decide(
    session: AsyncSession, user: User, version: int, decision: Decision, now: dt.datetime
) -> None:
    """Record a decision on a notice; only a grant lets personal data be processed."""
    user.consent_version = version if decision is Decision.GRANTED else None
    session.add(
        ConsentRecord(user_id=user.id, notice_version=version, decision=decision.value, at=now)
    )


async def consents_of(session: AsyncSession, user_id: int) -> list[ConsentRecord]:
    rows = await session.scalars(
        select(ConsentRecord).where(ConsentRecord.user_id == user_id).order_by(ConsentRecord.id)
    )
    return list(rows)
