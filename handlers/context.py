"""What a handler gets besides the event: the open session, the user, and shared services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from models.admin_units import Area
from models.base import utcnow
from models.users import User


@dataclass(frozen=True)
class Services:
    """Built once at start-up from the settings and shared by every event."""

    area: Area
    timezone: ZoneInfo
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    # Days before a certificate's expiry on which its producer is reminded (0 = the day itself).
    reminder_days: tuple[int, ...] = (180, 90, 60, 30, 0)

    def today(self) -> dt.date:
        return self.clock().astimezone(self.timezone).date()


async def _ignore_progress(_text: str) -> None:
    return None


@dataclass(frozen=True)
class Context:
    session: AsyncSession
    user: User
    services: Services
    # Sends a short "working on it" message at once, before the event's work is done.
    progress: Callable[[str], Awaitable[None]] = _ignore_progress

    @property
    def area(self) -> Area:
        return self.services.area

    def today(self) -> dt.date:
        return self.services.today()
