"""Daily digests, one row per official and local day, so none is queued twice.

The row and the digest's outbox messages are written in one transaction; the outbox delivers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, UniqueConstraint, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_if_absent


class DigestRun(Base):
    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("user_id", "local_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    local_date: Mapped[dt.date]
    # New registrations in (since, covered_until] are listed; the next digest starts there.
    since: Mapped[dt.datetime]
    covered_until: Mapped[dt.datetime]


async def last_covered(session: AsyncSession, user_id: int) -> dt.datetime | None:
    return await session.scalar(
        select(func.max(DigestRun.covered_until)).where(DigestRun.user_id == user_id)
    )


async def open_digest(
    session: AsyncSession,
    user_id: int,
    local_date: dt.date,
    now: dt.datetime,
    first_since: dt.datetime,
) -> DigestRun | None:
    """Record today's digest of an official; None when it was recorded (and queued) before."""
    since = await last_covered(session, user_id) or first_since
    opened = await insert_if_absent(
        session,
        DigestRun,
        user_id=user_id,
        local_date=local_date,
        since=since,
        covered_until=now,
    )
    if not opened:
        return None
    return await session.scalar(
        select(DigestRun).where(DigestRun.user_id == user_id, DigestRun.local_date == local_date)
    )
