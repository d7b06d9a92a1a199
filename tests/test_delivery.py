"""Every notification the bot owes arrives exactly once, within Telegram's limits, through
flood control, server errors, timeouts and users who blocked the bot."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.delivery
from bot.delivery import DeliveryWorker, backoff
from bot.emulator import Faults, Limits, TelegramEmulator
from bot.settings import Settings
from models.base import utcnow
from models.db import create_sessionmaker
from models.outbox import DeliveryChat, OutboxMessage, Pacing
from models.users import User
from tests.harness import BotUnderTest

CHATS, PER_CHAT = 2_000, 5
# The bot gives up on a call after DELIVERY_TIMEOUT and retries it; the emulator's timeout faults
# hold a call longer, so they are timeouts. A call merely slowed by busy cores must stay under it:
# given up on although delivered, it would be sent twice.
DELIVERY_TIMEOUT, HELD = 10.0, 15.0
BLOCKED = set(range(1_000_001, 1_000_001 + 40))


async def queue_notifications(engine: AsyncEngine, chats: range, per_chat: int) -> None:
    """`per_chat` numbered messages for every chat, and a user behind every chat. (Rows are
    written in bulk: the test is about delivery, and 10,000 separate enqueue calls in one
    transaction would hold SQLite's write lock longer than the bot's busy timeout.)"""
    now = utcnow()
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            insert(User),
            [{"channel": "telegram", "channel_user_id": str(c), "chat_id": str(c)} for c in chats],
        )
        await session.execute(
            insert(DeliveryChat),
            [{"channel": "telegram", "chat_id": str(c), "next_at": now} for c in chats],
        )
        await session.execute(
            insert(OutboxMessage),
            [
                {
                    "key": f"test:{chat}:{number}",
                    "channel": "telegram",
                    "chat_id": str(chat),
                    "text": f"thông báo {number} cho {chat}",
                    "not_before": now,
                    "created_at": now,
                }
                for number in range(per_chat)
                for chat in chats
            ],
        )


@pytest.fixture
async def fast_bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> AsyncIterator[BotUnderTest]:
    """The bot with the overall rate scaled up so thousands of messages take seconds; the
    per-chat limit stays Telegram's, and the emulator enforces both like Telegram does."""
    fast = settings.model_copy(
        update={"ocop_delivery_rate": 1_000.0, "ocop_delivery_timeout": DELIVERY_TIMEOUT}
    )
    emulator.limits = Limits(overall_per_second=1_000, per_chat_interval=1.0)
    running = BotUnderTest(fast, engine, emulator)
    running.pacing = Pacing(fast.ocop_delivery_rate)  # Telegram's per-chat interval too
    await running.start()
    yield running
    await running.stop()


async def test_ten_thousand_notifications_through_faults_arrive_exactly_once(
    fast_bot: BotUnderTest, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    chats = range(1_000_001, 1_000_001 + CHATS)
    await queue_notifications(engine, chats, PER_CHAT)
    emulator.faults = faults = Faults(
        rate_429=0.01,
        retry_after=1,
        rate_500=0.01,
        rate_timeout=0.003,
        timeout_seconds=HELD,
        blocked_chats=BLOCKED,
        seed=7,
    )
    # 10,000 messages take 10 s at the emulator's overall limit, much longer on a machine whose
    # cores are busy: the wait lasts as long as messages keep going out. It fails after the
    # longest pause the rules allow between two of them, twice over: a chat's interval, a flood
    # reply's retry-after, a call timed out, then the longest backoff before its retry. (With
    # 2,000 chats sending in parallel, the pauses are far shorter until the last few messages.)
    pause = (
        emulator.limits.per_chat_interval
        + faults.retry_after
        + fast_bot.settings.ocop_delivery_timeout
        + max(backoff(attempts) for attempts in range(64)).total_seconds()
    )
    await fast_bot.drain(timeout=2 * pause, progressing=True)

    received = Counter(
        (entry["chat_id"], entry["text"]) for entry in emulator.sent if entry["chat_id"] in chats
    )
    expected = {
        (chat, f"thông báo {number} cho {chat}")
        for chat in chats
        if chat not in BLOCKED
        for number in range(PER_CHAT)
    }
    assert set(received) == expected  # nothing lost, nothing sent to a blocked chat
    assert max(received.values()) == 1  # nothing twice
    for chat in (1_000_100, 1_001_999):  # and in the order queued
        assert emulator.texts_to(chat) == [f"thông báo {n} cho {chat}" for n in range(PER_CHAT)]
    interval = emulator.min_interval_per_chat()
    assert interval is not None and interval >= 1.0
    assert emulator.throttled == 0  # our pacing never hit Telegram's own limits
    assert emulator.injected["429"] > 0 and emulator.injected["500"] > 0
    assert emulator.injected["timeout"] > 0 and emulator.injected["blocked"] > 0

    async with create_sessionmaker(engine)() as session:
        unreachable = set(
            await session.scalars(select(User.chat_id).where(User.reachable.is_(False)))
        )
        states = dict(
            (
                await session.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.key.startswith("test:"))
                    .group_by(OutboxMessage.status)
                )
            ).all()
        )
    assert unreachable == {str(chat) for chat in BLOCKED}
    assert states == {"sent": len(expected), "failed": len(BLOCKED) * PER_CHAT}


@pytest.mark.both_databases
async def test_answers_beyond_what_telegram_lets_out_wait_in_the_outbox_in_order(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    """More people write at once than 30 messages a second can answer. The delivery worker
    keeps only a few seconds of replies in hand (the rest wait unleased in the outbox: a crash
    loses nothing and nothing needs renewing); every answer still arrives once, in its chat's
    order."""
    rate, people = 30.0, 200
    emulator.limits = Limits(overall_per_second=rate)
    running = BotUnderTest(settings, engine, emulator)
    running.pacing = Pacing(rate, private_interval=0.0)
    await running.start()
    try:
        worker = running.runtime.deliveries["telegram"]
        # The replies to a chat with nothing else going on are what every chat should get.
        control = 2_000_000
        emulator.send_text(control, "/start")
        emulator.send_text(control, "/help")
        await emulator.wait_for_messages(control, 2, timeout=30)
        expected = emulator.texts_to(control)

        held: list[int] = []
        running.runtime.inbox.listeners.append(lambda *_: held.append(worker.in_hand))
        worker.listeners.append(lambda *_: held.append(worker.in_hand))
        chats = range(2_000_001, 2_000_001 + people)
        for chat in chats:
            emulator.send_text(chat, "/start")
            emulator.send_text(chat, "/help")
        # 400 replies at 30 a second: the deadline is the work's own length, four times over.
        deadline = 4 * 2 * people / rate + 30
        for chat in chats:
            await emulator.wait_for_messages(chat, 2, timeout=deadline)
        await running.drain()
    finally:
        await running.stop()

    for chat in chats:
        assert emulator.texts_to(chat) == expected, chat  # each once, in order
    # Replies leased as their event commits and a claim planned just before may pass the limit
    # by one claim's slots (a second of the rate).
    limit = worker.hand_limit + rate * running.pacing.horizon
    assert max(held) <= limit, (max(held), limit)
    assert max(held) < people  # without the limit, every answer would be in hand at once
    assert emulator.throttled == 0


async def test_batches_writing_replies_at_once_each_get_room_to_send_them_at_once(
    engine: AsyncEngine,
) -> None:
    """PostgreSQL writes batches in parallel. Each must get room for its own replies:
    when the first took all that was left, the others' replies were queued in the outbox, the
    worker went into backlog mode and stayed there while the load lasted, every reply waiting
    for a claim (5,000 of 6,800 in the conversation benchmark, p99 1.7 s)."""

    async def send(_chat: str, _reply: object) -> str:
        return "1"

    worker = DeliveryWorker(create_sessionmaker(engine), "telegram", send, Pacing(30))
    await worker.step()  # the outbox is empty: nothing waits, replies may go at once
    first, second = worker.reserve(3), worker.reserve(5)
    assert (first, second) == (3, 5)
    # Room is finite all the same: what is held counts against the rest.
    assert worker.reserve(worker.hand_limit) == worker.hand_limit - 8


async def test_a_send_that_outlasts_its_lease_stays_its_workers_and_goes_out_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message in a worker's hands longer than its lease (a slow answer from Telegram, a
    reply retried for a while) has its lease renewed, with the worker's writes of results: a
    second process's claim does not take it back and send it again."""
    lease = dt.timedelta(seconds=1.5)
    monkeypatch.setattr(bot.delivery, "LEASE", lease)  # renewed every half second
    await queue_notifications(engine, range(1, 2), 1)
    sessions = create_sessionmaker(engine)
    answer, sending, written = asyncio.Event(), asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    async def slow(chat: str, _reply: object) -> str:
        sent.append(f"first:{chat}")
        sending.set()
        await answer.wait()
        return "1"

    async def other(chat: str, _reply: object) -> str:
        sent.append(f"second:{chat}")
        return "2"

    first = DeliveryWorker(sessions, "telegram", slow, Pacing(30, lease=lease))
    first.listeners.append(lambda _id, _sent: written.set())
    second = DeliveryWorker(sessions, "telegram", other, Pacing(30, lease=lease))
    running = asyncio.create_task(first.run())
    try:
        async with asyncio.timeout(60):
            await sending.wait()  # the first worker claimed it and is sending
            async with sessions() as session:
                claimed_until = await session.scalar(select(OutboxMessage.lease_until))
            assert claimed_until is not None
            # Past the lease the claim gave: only a renewal keeps it the first worker's.
            lapsed = claimed_until + dt.timedelta(seconds=0.2) - utcnow()
            await asyncio.sleep(max(0.0, lapsed.total_seconds()))
            await second.step()
            answer.set()
            await written.wait()
    finally:
        await first.stop()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert sent == ["first:1"]
    async with sessions() as session:
        assert await session.scalar(select(OutboxMessage.status)) == "sent"
