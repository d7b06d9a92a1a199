"""Registrations that arrived (submitted or resubmitted) since officials were last told of them.

One watermark row remembers the last status change announced, so a restart never announces a
submission twice and a crash never skips one: the mark moves in the transaction that queues the
announcements in the outbox.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.domain import RegistrationStatus
from models.registrations import Registration, RegistrationStatusChange

MARK = "arrivals"
# A fresh database announces what arrived this long before the first run, not its whole past.
FIRST_LOOK_BACK = dt.timedelta(minutes=10)
# Changes younger than this wait for the next run: with several processes on PostgreSQL, a
# change can commit after one with a higher id, and the watermark must not pass it by. A
# batch's transaction lasts well under a second.
SETTLE = dt.timedelta(seconds=10)


class ArrivalMark(Base):
    __tablename__ = "arrival_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_change_id: Mapped[int]


async def _mark(session: AsyncSession, now: dt.datetime) -> ArrivalMark:
    mark = await session.get(ArrivalMark, MARK, with_for_update=True)
    if mark is None:
        before = await session.scalar(
            select(func.max(RegistrationStatusChange.id)).where(
                RegistrationStatusChange.changed_at < now - FIRST_LOOK_BACK
            )
        )
        mark = ArrivalMark(name=MARK, last_change_id=before or 0)
        session.add(mark)
    return mark


async def take_arrivals(
    session: AsyncSession, now: dt.datetime, limit: int = 500
) -> tuple[int, list[tuple[Registration, bool]]]:
    """The registrations submitted (False) or resubmitted (True) since the last call, oldest
    first, each once, and the new watermark; it moves past them (the caller queues and
    commits)."""
    mark = await _mark(session, now)
    rows = (
        await session.execute(
            select(RegistrationStatusChange.id, RegistrationStatusChange.registration_id)
            .where(
                RegistrationStatusChange.id > mark.last_change_id,
                RegistrationStatusChange.status == RegistrationStatus.SUBMITTED,
                RegistrationStatusChange.changed_at <= now - SETTLE,
            )
            .order_by(RegistrationStatusChange.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return mark.last_change_id, []
    mark.last_change_id = rows[-1].id
    ids = list(dict.fromkeys(row.registration_id for row in rows))
    found = {
        registration.id: registration
        for registration in await session.scalars(
            select(Registration).where(Registration.id.in_(ids))
        )
    }
    return mark.last_change_id, [
        (found[i], found[i].changed_fields is not None)
        for i in ids
        if i in found and found[i].status is RegistrationStatus.SUBMITTED
    ]
