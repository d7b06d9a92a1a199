"""Daily digests, one row per official and local day, so none is sent twice or lost.

A run is opened (its time window fixed) before sending and marked sent after; a run left
unsent by a crash is sent again, with the same window, on the next tick.
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
    sent_at: Mapped[dt.datetime | None]


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
    """Today's run of an official that still has to be sent; None when it was sent already."""
    query = select(DigestRun).where(
        DigestRun.user_id == user_id, DigestRun.local_date == local_date
    )
    run = await session.scalar(query)
    if run is None:
        since = await last_covered(session, user_id) or first_since
        await insert_if_absent(
            session,
            DigestRun,
            user_id=user_id,
            local_date=local_date,
            since=since,
            covered_until=now,
            sent_at=None,
        )
        run = await session.scalar(query.execution_options(populate_existing=True))
    return run if run is not None and run.sent_at is None else None
