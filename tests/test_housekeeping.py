"""Housekeeping: the record of handled update ids (which catches redeliveries) keeps a week."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import jobs
from bot.jobs import HOUSEKEEPING_JOB
from models.db import create_sessionmaker
from models.users import ProcessedUpdate
from tests.harness import BotUnderTest, Producer


@pytest.mark.both_databases
async def test_update_ids_older_than_a_week_are_forgotten(
    bot: BotUnderTest, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = bot.clock()
    async with create_sessionmaker(engine)() as session, session.begin():
        for days, update_id in ((30, "old-1"), (8, "old-2"), (6, "recent")):
            session.add(
                ProcessedUpdate(
                    channel="telegram", update_id=update_id, processed_at=now - dt.timedelta(days)
                )
            )

    monkeypatch.setattr(jobs, "FORGET_CHUNK", 1)  # a backlog goes in several transactions
    await bot.run_job(HOUSEKEEPING_JOB)

    async with create_sessionmaker(engine, read_only=True)() as session:
        kept = set(await session.scalars(select(ProcessedUpdate.update_id)))
    assert kept == {"recent"}


async def test_a_redelivery_within_the_week_still_does_nothing(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=5150)
    update = producer.emulator.send_text(5150, "/start")
    assert await bot.deliver(update)  # the welcome
    bot.clock.now += dt.timedelta(days=6)
    await bot.run_job(HOUSEKEEPING_JOB)
    assert await producer.redeliver(update) == []
