"""One runtime, the same jobs: a bot serving Zalo alone runs the digest, the reminders, the
arrival notices, housekeeping and backups, as one serving Telegram does."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import WithoutTelegram
from bot.emulator import TelegramEmulator
from bot.emulator.zalo import ZaloEmulator
from bot.jobs import (
    ARRIVALS_JOB,
    BACKUP_JOB,
    DIGEST_JOB,
    HOUSEKEEPING_JOB,
    MENUS_JOB,
    REMINDER_JOB,
)
from bot.settings import Settings
from handlers.context import Services
from models.admin_units import Area
from models.db import create_sessionmaker
from models.outbox import Pacing
from models.users import ProcessedUpdate
from tests.harness import BotUnderTest, Clock
from tests.zalo_harness import zalo_emulator, zalo_settings

__all__ = ["zalo_emulator"]  # fixtures


def zalo_alone(settings: Settings, engine: AsyncEngine, clock: Clock) -> WithoutTelegram:
    """The bot as `ocop-bot run` serves it with only ZALO_BOT_TOKEN set."""
    services = Services(
        area=Area(
            settings.ocop_province_code, settings.ocop_commune_codes, settings.ocop_area_name
        ),
        timezone=ZoneInfo(settings.ocop_timezone),
        clock=clock,
    )
    return WithoutTelegram(
        settings.model_copy(update={"telegram_bot_token": None}),
        engine=engine,
        services=services,
        pacing=Pacing(settings.ocop_delivery_rate, private_interval=0.0),
        poll_timeout=5,
        retry_delay=0.05,
    )


async def test_zalo_alone_runs_the_jobs_a_telegram_bot_runs(
    settings: Settings,
    engine: AsyncEngine,
    emulator: TelegramEmulator,
    zalo_emulator: ZaloEmulator,
) -> None:
    with_arrivals = settings.model_copy(update={"ocop_arrival_notices": True})
    telegram = BotUnderTest(with_arrivals, engine, emulator)
    await telegram.start()
    try:
        telegram_jobs = telegram.runtime.scheduler.names
    finally:
        await telegram.stop()
    zalo = zalo_alone(zalo_settings(with_arrivals, zalo_emulator), engine, telegram.clock)
    every_channel = {DIGEST_JOB, REMINDER_JOB, ARRIVALS_JOB, HOUSEKEEPING_JOB, BACKUP_JOB}
    assert every_channel <= telegram_jobs
    # Telegram's command menus are the one job of a channel's own.
    assert zalo.runtime.scheduler.names == telegram_jobs - {MENUS_JOB}


async def test_a_zalo_only_bot_forgets_old_update_ids_once_started(
    settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> None:
    """Housekeeping runs a moment after start-up with no Telegram token: the record of handled
    updates keeps a week, whichever channel they came from."""
    clock = Clock(dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC))
    async with create_sessionmaker(engine)() as session, session.begin():
        for days, update_id in ((30, "old"), (6, "recent")):
            session.add(
                ProcessedUpdate(
                    channel="zalo", update_id=update_id, processed_at=clock() - dt.timedelta(days)
                )
            )
    bot = zalo_alone(zalo_settings(settings, zalo_emulator), engine, clock)
    housekept = asyncio.Event()
    bot.runtime.scheduler.listeners.append(
        lambda name: housekept.set() if name == HOUSEKEEPING_JOB else None
    )
    await bot.start()
    try:
        await asyncio.wait_for(housekept.wait(), timeout=15)  # a second after start-up
    finally:
        await bot.stop()
    assert await kept(engine) == {"recent"}


async def kept(engine: AsyncEngine) -> set[str]:
    async with create_sessionmaker(engine, read_only=True)() as session:
        return set(await session.scalars(select(ProcessedUpdate.update_id)))
