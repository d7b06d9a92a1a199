"""Attacks on "nothing lost at the edges" (issue 10): moments the edge code does not expect,
played through the real bot, the emulator and a real database file. Each test tells the story
a producer would notice if the hole were there."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery import LEASE, MAX_ATTEMPTS, DeliveryWorker, backoff
from bot.emulator import Faults, TelegramEmulator
from bot.emulator.wire import error
from models.base import utcnow
from models.db import BUSY_SECONDS, create_sessionmaker
from models.outbox import enqueue
from models.users import User
from tests import factories
from tests.harness import BotUnderTest, Producer

NEXT_AFTER_NAME = "Sản phẩm thuộc nhóm nào?"  # the question after the product name
# What bot/delivery.py logs when it could not write a send's result, and when a claim failed
# (the next claim starts at once, and waits its turn behind the next result write).
FLUSH_FAILED = "delivery results failed"
CLAIM_FAILED = "delivery round failed"


async def _settled(worker: DeliveryWorker, timeout: float) -> None:
    """Until the worker has nothing on the wire and nothing left to write down."""
    async with asyncio.timeout(timeout):
        while worker._in_flight or worker._results:
            worker.wake()
            async with worker.flushed:
                await worker.flushed.wait()


class _Failures(logging.Handler):
    """Tells the thread holding the lock when the bot failed to write a send's result, and
    when one of its claims failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.flushes: list[float] = []
        self.claims: list[float] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for text, times in ((FLUSH_FAILED, self.flushes), (CLAIM_FAILED, self.claims)):
            if text in message:
                with self.changed:
                    times.append(time.monotonic())
                    self.changed.notify_all()

    def claim_waits_after(self, moment: float) -> bool:
        """A result write just failed, and the claim that takes the writer's turn after it
        started (its clock read) after `moment`."""
        return any(
            claim > moment and any(flush > claim for flush in self.flushes) for claim in self.claims
        )


def _hold_until_lease_gone(
    path: str, locked: threading.Event, failures: _Failures, limit: float
) -> float:
    """Another program writing to the bot's file: takes the write lock and keeps it until the
    bot's next transaction is a claim begun after the sent reply's lease (bot/delivery.py
    LEASE) ran out; lets go right then. Returns when (time.monotonic) it let go."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=limit)
    try:
        connection.execute("BEGIN IMMEDIATE")
        taken = time.monotonic()
        locked.set()
        with failures.changed:
            failures.changed.wait_for(
                lambda: failures.claim_waits_after(taken + LEASE.total_seconds()),
                timeout=limit,
            )
        connection.execute("ROLLBACK")
        return time.monotonic()
    finally:
        connection.close()


async def test_a_reply_sent_just_before_another_process_locks_the_database_goes_out_once(
    bot: BotUnderTest, emulator: TelegramEmulator, database_url: str
) -> None:
    """Telegram accepts the reply, and at that instant another program (an import, a backup
    tool) takes SQLite's write lock for longer than a delivery lease: the bot cannot write down
    that the reply went out. When the lock goes, the reply must not be sent a second time."""
    path = make_url(database_url).database
    assert path is not None
    producer = Producer(bot, 6101)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in producer.text
    before = len(emulator.texts_to(6101))

    loop = asyncio.get_running_loop()
    # The lease, then a claim and a result write that each wait out the bot's whole retry
    # budget, twice, then the handling and the send after the release.
    limit = LEASE.total_seconds() + 4 * BUSY_SECONDS + 30
    failures = _Failures()
    logging.getLogger("bot.delivery").addHandler(failures)
    holder: list[asyncio.Future[float]] = []
    send = emulator._send

    async def send_then_lock(method: str, handler: Any, params: dict[str, Any]) -> Any:
        if params.get("chat_id") == 6101 and not holder:
            locked = threading.Event()
            holder.append(
                loop.run_in_executor(None, _hold_until_lease_gone, path, locked, failures, limit)
            )
            assert await asyncio.to_thread(locked.wait, 30)
        return await send(method, handler, params)

    emulator._send = send_then_lock  # type: ignore[method-assign]
    try:
        update = emulator.send_text(6101, "Nước mắm Sa Huỳnh")
        await bot.tracker.wait_answered(str(update["update_id"]), timeout=limit)
        [holding] = holder
        await holding
        await bot.drain(timeout=limit)
        await _settled(bot.runtime.deliveries["telegram"], timeout=limit)
    finally:
        logging.getLogger("bot.delivery").removeHandler(failures)
        emulator._send = send  # type: ignore[method-assign]

    said = emulator.texts_to(6101)[before:]
    assert [NEXT_AFTER_NAME in text for text in said] == [True], said


def _seed_refusing_only(index: int, sends: int, rate: float) -> int:
    """A `Faults` seed whose draws refuse the `index`-th of the next `sends` sends (0-based) and
    accept the others (the emulator draws once per send: the k-th fate depends on the seed)."""
    for seed in range(10_000):
        draws = random.Random(seed)
        if [draws.random() < rate for _ in range(sends)] == [n == index for n in range(sends)]:
            return seed
    raise AssertionError("no such seed")


async def test_a_long_reply_whose_last_part_is_refused_does_not_repeat_its_first_part(
    bot: BotUnderTest, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    """A cooperative with many products asks /mydata: the answer is longer than one Telegram
    message, so it goes out in parts. Telegram answers the second part with a 500 once; the
    producer must still get each part once, in order, not the first part twice."""
    producer = Producer(bot, 6201)
    await producer.say("/start")
    async with create_sessionmaker(engine)() as session, session.begin():
        me = await session.scalar(select(User).where(User.channel_user_id == "6201"))
        assert me is not None
        for n in range(16):
            owner = await factories.subject(session, f"HTX {n:02d} " + "Nước mắm " * 18)
            item = await factories.product(
                session, owner, f"Sản phẩm {n:02d} " + "cá cơm " * 25, "x"
            )
            factories.registration(session, me, item, owner, at=bot.clock())
    before = len(emulator.texts_to(6201))

    # The answer's parts, the file, and a margin: only the second send is refused.
    emulator.faults = Faults(rate_500=0.5, seed=_seed_refusing_only(1, 8, 0.5))
    await producer.say("/mydata")
    await bot.drain()
    said = emulator.texts_to(6201)[before:]
    assert emulator.injected["500"] == 1
    assert len(said) >= 2, said  # the answer really came in parts
    assert len(said) == len(set(said)), [text[:30] for text in said]


async def test_a_long_notification_whose_last_part_is_refused_does_not_repeat_its_first_part(
    bot: BotUnderTest, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    """The same for a message the bot sends of its own accord (a long digest to an official):
    queued in the outbox whole, it goes out in parts, and a refused part is sent again alone."""
    official = Producer(bot, 6301)
    await official.say("/start")
    before = len(emulator.texts_to(6301))
    lines = [f"• OCOP-2026-{n:04d}: " + "Nước mắm cá cơm Sa Huỳnh " * 6 for n in range(40)]
    emulator.faults = Faults(rate_500=0.5, seed=_seed_refusing_only(1, 6, 0.5))
    async with create_sessionmaker(engine)() as session, session.begin():
        assert await enqueue(
            session,
            key="attack:long-digest",
            channel="telegram",
            chat_id="6301",
            user_id=None,
            text="\n".join(lines),
            choices=None,
            document_name=None,
            document=None,
            now=utcnow(),
        )
    bot.runtime.wake_deliveries()
    await bot.drain()
    said = emulator.texts_to(6301)[before:]
    assert emulator.injected["500"] == 1
    assert len(said) >= 2, said  # it really went in parts
    assert len(said) == len(set(said)), [text[:30] for text in said]
    assert "\n".join(said) == "\n".join(lines)


@pytest.mark.both_databases
async def test_a_message_on_the_wire_when_the_clock_jumps_forward_goes_out_once(
    bot: BotUnderTest, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    """NTP steps the wall clock a minute forward while Telegram is slow to answer a
    notification: by the new clock its lease has run out. The worker still sending it must
    not claim it again and send it a second time."""
    producer = Producer(bot, 6401)
    await producer.say("/start")
    before = len(emulator.texts_to(6401))
    worker = bot.runtime.deliveries["telegram"]
    claimed_after_jump = asyncio.Event()
    step = worker.step

    async def step_noting_claims() -> int:
        claims = not worker._replies_waiting  # a round with replies waiting claims nothing
        got = await step()
        if claims and worker.clock is not utcnow:
            claimed_after_jump.set()
        return got

    worker.step = step_noting_claims  # type: ignore[method-assign]
    send = emulator._send
    held = False

    async def slow_while_the_clock_jumps(method: str, handler: Any, params: dict[str, Any]) -> Any:
        nonlocal held
        if params.get("chat_id") == 6401 and not held:
            held = True
            worker.clock = lambda: utcnow() + 4 * LEASE
            worker.wake()
            await claimed_after_jump.wait()  # Telegram answers after a claim by the new clock
        return await send(method, handler, params)

    emulator._send = slow_while_the_clock_jumps  # type: ignore[method-assign]
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await enqueue(
                session,
                key="attack:clock-jump",
                channel="telegram",
                chat_id="6401",
                user_id=None,
                text="Hồ sơ OCOP-2026-0001 đã được tiếp nhận.",
                choices=None,
                document_name=None,
                document=None,
                now=utcnow(),
            )
        bot.runtime.wake_deliveries()
        async with asyncio.timeout(30):
            await emulator.wait_for_messages(6401, before + 1)
            await bot.drain()
            await _settled(worker, timeout=30)
    finally:
        emulator._send = send  # type: ignore[method-assign]
        worker.step = step  # type: ignore[method-assign]
        worker.clock = utcnow
    assert held
    assert emulator.texts_to(6401)[before:] == ["Hồ sơ OCOP-2026-0001 đã được tiếp nhận."]


async def test_a_file_telegram_keeps_refusing_does_not_freeze_the_chat(
    bot: BotUnderTest, emulator: TelegramEmulator
) -> None:
    """A producer asks /mydata; Telegram answers every upload of the file with a 500 (a bad
    day for its file servers). Their next message must still be answered, within the wait of
    any other answer, not after the file's last retry a quarter of an hour later; and once
    Telegram takes files again, the file follows, once."""
    producer = Producer(bot, 6501)
    await producer.say("/start")
    send = emulator._send
    refused = asyncio.Event()

    async def refuse_files(method: str, handler: Any, params: dict[str, Any]) -> Any:
        if method == "sendDocument" and params.get("chat_id") == 6501:
            refused.set()
            return error(500, "Internal Server Error")
        return await send(method, handler, params)

    emulator._send = refuse_files  # type: ignore[method-assign]
    try:
        emulator.send_text(6501, "/mydata")
        await asyncio.wait_for(refused.wait(), timeout=15)
        replies = await producer.say("/help")
    finally:
        emulator._send = send  # type: ignore[method-assign]
    assert any("/dangky" in (reply.get("text") or "") for reply in replies)
    answered = len(emulator.messages_to(6501))
    # Its retries back off (bot/delivery.backoff, at most a minute): two of them at most.
    await emulator.wait_for_messages(
        6501, answered + 1, timeout=2 * backoff(MAX_ATTEMPTS).total_seconds() + 30
    )
    await bot.drain()
    files = [m for m in emulator.messages_to(6501) if m["method"] == "sendDocument"]
    assert len(files) == 1 and emulator.messages_to(6501).index(files[0]) >= answered


async def test_a_file_telegram_refuses_is_followed_by_a_message_saying_so(
    bot: BotUnderTest, emulator: TelegramEmulator
) -> None:
    """Telegram refuses the producer's /mydata file outright (a 400: the same upload would fail
    the same way again). The producer must not wait for it in silence: one message says the
    file could not be sent and to ask again, and nothing else goes wrong in the chat."""
    producer = Producer(bot, 6502)
    await producer.say("/start")
    send = emulator._send
    refusals = 0

    async def refuse_files(method: str, handler: Any, params: dict[str, Any]) -> Any:
        nonlocal refusals
        if method == "sendDocument" and params.get("chat_id") == 6502:
            refusals += 1
            return error(400, "Bad Request: file is too big")
        return await send(method, handler, params)

    emulator._send = refuse_files  # type: ignore[method-assign]
    try:
        replies = await producer.say("/mydata")
        await bot.drain()
    finally:
        emulator._send = send  # type: ignore[method-assign]
    assert refusals == 1  # refused for good: not retried
    texts = [reply.get("text") or "" for reply in replies]
    assert any("Những thông tin bot đang lưu" in text for text in texts)
    told = [t for t in emulator.texts_to(6502) if "chưa gửi được tệp" in t]
    assert len(told) == 1 and ".json" in told[0] and "yêu cầu lại" in told[0]
    assert not [m for m in emulator.messages_to(6502) if m["method"] == "sendDocument"]
    assert "/dangky" in " ".join(r.get("text") or "" for r in await producer.say("/help"))


def _hold_until(path: str, locked: threading.Event, release: threading.Event) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(120)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@pytest.mark.parametrize("moment", ["idle", "a reply just sent"])
async def test_a_stop_while_another_process_locks_the_database_takes_under_ten_seconds(
    bot: BotUnderTest, emulator: TelegramEmulator, database_url: str, moment: str
) -> None:
    """The operator restarts the bot while another program holds SQLite's write lock (the bot
    seems stuck, so they restart it): SIGTERM must still end it within 10 s (issue 10, 7),
    also when a reply went out just as the lock was taken (its result not written yet)."""
    path = make_url(database_url).database
    assert path is not None
    producer = Producer(bot, 6601)
    await producer.say("/start")
    loop = asyncio.get_running_loop()
    locked, release = threading.Event(), threading.Event()
    holder: list[asyncio.Future[None]] = []

    def lock() -> None:
        holder.append(loop.run_in_executor(None, _hold_until, path, locked, release))

    send = emulator._send
    sent = asyncio.Event()

    async def send_then_lock(method: str, handler: Any, params: dict[str, Any]) -> Any:
        if params.get("chat_id") == 6601 and not holder:
            lock()
            assert await asyncio.to_thread(locked.wait, 30)
            answer = await send(method, handler, params)
            sent.set()
            return answer
        return await send(method, handler, params)

    try:
        if moment == "idle":
            lock()
        else:
            emulator._send = send_then_lock  # type: ignore[method-assign]
            emulator.send_text(6601, "/help")
            await asyncio.wait_for(sent.wait(), timeout=30)
        assert await asyncio.to_thread(locked.wait, 30)
        started = time.monotonic()
        await bot.stop()
        took = time.monotonic() - started
    finally:
        emulator._send = send  # type: ignore[method-assign]
        release.set()
        await asyncio.gather(*holder)
    assert took < 10, f"stopping took {took:.1f} s"
