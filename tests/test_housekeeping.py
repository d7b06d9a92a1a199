"""Housekeeping: the record of handled update ids (which catches redeliveries) keeps a week;
unfinished forms and delivered messages (personal data) are kept no longer than configured."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import jobs
from bot.jobs import HOUSEKEEPING_JOB
from models.conversations import Conversation
from models.db import create_sessionmaker
from models.outbox import OutboxMessage
from models.users import ProcessedUpdate
from tests.flows import stored_registrations
from tests.harness import BotUnderTest, Producer


async def _remember(engine: AsyncEngine, now: dt.datetime, **ages: float) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        for update_id, days in ages.items():
            session.add(
                ProcessedUpdate(
                    channel="telegram", update_id=update_id, processed_at=now - dt.timedelta(days)
                )
            )


@pytest.mark.both_databases
async def test_update_ids_older_than_a_week_are_forgotten(
    bot: BotUnderTest, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = bot.clock()
    await _remember(engine, now, **{"old-1": 30, "old-2": 8, "recent": 6})
    monkeypatch.setattr(jobs, "FORGET_CHUNK", 1)  # a backlog goes in several transactions
    await bot.run_job(HOUSEKEEPING_JOB)

    async with create_sessionmaker(engine, read_only=True)() as session:
        kept = set(await session.scalars(select(ProcessedUpdate.update_id)))
    assert kept == {"recent"}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_run_asked_for_while_the_timed_one_is_under_way_waits_and_then_runs(
    bot: BotUnderTest, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a run of a job takes a lock other processes skip on; in one process, a run
    asked for (an operator's, a test's) while the timed one holds it used to skip too, silently
    doing nothing. It waits for the run under way instead, and then does its own work."""
    now = bot.clock()
    await _remember(engine, now, **{"old-1": 30})
    held, release = asyncio.Event(), asyncio.Event()
    forget_updates = jobs.forget_updates

    async def forget_and_hold(*args: Any) -> int:
        forgotten = await forget_updates(*args)
        if not held.is_set():  # the first run stays in its transaction until a second is asked
            held.set()
            await release.wait()
        return forgotten

    monkeypatch.setattr(jobs, "forget_updates", forget_and_hold)
    scheduler = bot.runtime.scheduler
    run_now = scheduler.run_now

    async def asked_for(name: str) -> None:
        release.set()
        await run_now(name)

    under_way = asyncio.create_task(run_now(HOUSEKEEPING_JOB))  # as the timer would start it
    await held.wait()
    await _remember(engine, now, **{"old-2": 8, "recent": 6})  # after that run looked
    monkeypatch.setattr(scheduler, "run_now", asked_for)
    await bot.run_job(HOUSEKEEPING_JOB)
    await under_way

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


async def _age(
    engine: AsyncEngine, model: Any, days: float, now: dt.datetime, **where: Any
) -> None:
    column = model.updated_at if model is Conversation else model.created_at
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            update(model).filter_by(**where).values({column: now - dt.timedelta(days=days)})
        )


@pytest.mark.both_databases
async def test_forms_left_unfinished_for_90_days_are_emptied(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    gone, kept = Producer(bot, user_id=5161), Producer(bot, user_id=5162)
    for producer in (gone, kept):
        await producer.say("/dangky")
        await producer.tap("Sản phẩm mới")
        await producer.tap("Sa Huỳnh")
        await producer.say("Mắm tép riêng")
    now = bot.clock()
    await _age(engine, Conversation, 91, now, chat_id="5161")
    await _age(engine, Conversation, 89, now, chat_id="5162")

    await bot.run_job(HOUSEKEEPING_JOB)

    async with create_sessionmaker(engine, read_only=True)() as session:
        rows = await session.scalars(select(Conversation))
        forms = {row.chat_id: (row.flow, row.answers) for row in rows}
    assert forms["5161"] == (None, {})
    assert forms["5162"][1]["product"] == "Mắm tép riêng"
    await gone.tap("Thực phẩm")  # a button of the emptied form
    assert "Mắm tép riêng" not in gone.text
    assert await stored_registrations(engine) == []


async def test_delivered_messages_go_after_30_days_but_reminders_stay(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=5171)
    await producer.say("/start")
    await producer.say("/help")
    now = bot.clock()
    async with create_sessionmaker(engine)() as session, session.begin():
        session.add(
            OutboxMessage(
                key="reminder:1:90#0",
                channel="telegram",
                chat_id="5171",
                text="⏰",
                status="sent",
                not_before=now,
                created_at=now,
                sent_at=now,
            )
        )
    await _age(engine, OutboxMessage, 31, now)
    async with create_sessionmaker(engine)() as session, session.begin():
        recent = await session.scalar(  # the answer to /help: sent 29 days ago
            select(OutboxMessage)
            .where(~OutboxMessage.key.startswith("reminder:"))
            .order_by(OutboxMessage.id.desc())
        )
        assert recent is not None
        recent.created_at = now - dt.timedelta(days=29)

    await bot.run_job(HOUSEKEEPING_JOB)

    async with create_sessionmaker(engine, read_only=True)() as session:
        left = list(await session.scalars(select(OutboxMessage)))
    assert sorted(m.key for m in left) == sorted(["reminder:1:90#0", recent.key])
