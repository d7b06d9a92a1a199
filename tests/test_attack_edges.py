"""Attacks on "nothing lost at the edges" (issue 10): moments the edge code does not expect,
played through the real bot, the emulator and a real database file. Each test tells the story
a producer would notice if the hole were there."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from typing import Any

from sqlalchemy.engine import make_url

from bot.delivery import LEASE, DeliveryWorker
from bot.emulator import TelegramEmulator
from models.db import BUSY_SECONDS
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
            claim > moment and any(flush > claim for flush in self.flushes)
            for claim in self.claims
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
