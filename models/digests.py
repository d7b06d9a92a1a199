"""Daily digests already sent, one row per official and local day, so none is sent twice."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, UniqueConstraint, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_if_absent, utcnow


class DigestRun(Base):
    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("user_id", "local_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    local_date: Mapped[dt.date]
    # New registrations up to this moment were listed; the next digest starts here.
    covered_until: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


async def last_covered(session: AsyncSession, user_id: int) -> dt.datetime | None:
    return await session.scalar(
        select(func.max(DigestRun.covered_until)).where(DigestRun.user_id == user_id)
    )


async def claim_digest(
    session: AsyncSession, user_id: int, local_date: dt.date, covered_until: dt.datetime
) -> bool:
    """Reserve today's digest of an official; False when it was already sent (or is being)."""
    return await insert_if_absent(
        session,
        DigestRun,
        user_id=user_id,
        local_date=local_date,
        covered_until=covered_until,
        sent_at=utcnow(),
    )
