"""Attack on "nothing lost at the edges" (issue 10) over the Zalo OA + ZNS emulator: a
notification held back by the channel's rules must not hold back the answers of its chat."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.emulator.zalo_oa import ZaloOAEmulator
from models.outbox import OutboxMessage
from tests.harness import Clock
from tests.test_zalo_oa import certified
from tests.zalo_oa_harness import OABotUnderTest, oa_bot, oa_clock, oa_emulator

__all__ = ["oa_bot", "oa_clock", "oa_emulator"]  # fixtures


async def test_a_producer_who_writes_at_night_is_answered_although_a_zns_waits_for_the_morning(
    oa_bot: OABotUnderTest, oa_emulator: ZaloOAEmulator, oa_clock: Clock, engine: AsyncEngine
) -> None:
    """At 23:30 the producer's reminder cannot go by ZNS (outside the sending hours) and waits
    in the outbox for 07:00. The producer writes to the OA just then: the bot must answer now,
    not at seven in the morning behind the reminder. (It held: the message reopens the window
    and brings the reminder forward, `models.zalo_oa.touch_chat`.)"""
    user = await certified(oa_bot, engine, "6100000000000000107", "+84905000107")
    oa_clock.now = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.UTC)  # 23:30 in Vietnam
    await oa_bot.run_reminders()
    await oa_bot.sends(lambda rows: any(r.route == "zns" for r in rows))

    async def waiting(session: AsyncSession) -> OutboxMessage | None:
        return await session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.key.like("reminder:%"), OutboxMessage.status == "pending"
            )
        )

    await oa_bot.until(waiting)  # held back until the morning
    await user.say("/help")  # answered within the harness's usual wait, or it raises
    assert user.replies, "the producer got no answer"
