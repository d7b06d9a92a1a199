"""Broadcast: how close the outbox delivery gets to the configured overall rate, against the
emulator in a process of its own enforcing Telegram's limits (scaled up so a run takes seconds).

The figure is delivered messages per second divided by the configured limit (target >= 0.9),
with zero 429 answers and zero duplicates.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import Counter
from dataclasses import dataclass

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot
from telegram.request import HTTPXRequest

from bench.transport import TOKEN, start_emulator
from bot.channels.telegram import telegram_sender
from bot.delivery import CONCURRENT_SENDS, DeliveryWorker
from bot.migrate import upgrade
from models.base import utcnow
from models.db import create_engine, create_sessionmaker
from models.outbox import DeliveryChat, OutboxMessage, Pacing, undelivered


@dataclass(frozen=True)
class BroadcastResult:
    rate_limit: float
    messages: int
    delivered: int
    seconds: float
    throttled: int
    duplicates: int

    @property
    def per_second(self) -> float:
        return (self.delivered - 1) / self.seconds if self.seconds else 0.0

    @property
    def fraction(self) -> float:
        return self.per_second / self.rate_limit


async def fill_outbox(
    session: AsyncSession, *, first_chat: int, chats: int, messages: int, prefix: str
) -> None:
    """`messages` notifications spread over `chats` Telegram chats numbered from `first_chat`,
    all due now, inserted in bulk (no notice-building: only delivery is measured)."""
    now = utcnow()
    await session.execute(
        insert(DeliveryChat),
        [
            {"channel": "telegram", "chat_id": str(first_chat + c), "next_at": now}
            for c in range(chats)
        ],
    )
    await session.execute(
        insert(OutboxMessage),
        [
            {
                "key": f"{prefix}:{n}",
                "channel": "telegram",
                "chat_id": str(first_chat + n % chats),
                "text": f"tin {n}",
                "not_before": now,
                "created_at": now,
            }
            for n in range(messages)
        ],
    )


async def queue(url: str, chats: int, per_chat: int) -> None:
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session, session.begin():
        await fill_outbox(
            session, first_chat=10_000, chats=chats, messages=chats * per_chat, prefix="bench"
        )
    await engine.dispose()


async def drained(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        return not await undelivered(session)


async def broadcast(rate: float = 120.0, chats: int = 600, per_chat: int = 2) -> BroadcastResult:
    emulator, base = await start_emulator({"overall_per_second": rate, "per_chat_interval": 1.0})
    folder = tempfile.mkdtemp(prefix="ocop-bench-")
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    try:
        await asyncio.to_thread(upgrade, url)
        await queue(url, chats, per_chat)
        engine = create_engine(url)
        reader = create_sessionmaker(engine, read_only=True)
        bot = Bot(
            TOKEN,
            base_url=f"{base}/bot",
            request=HTTPXRequest(
                connection_pool_size=CONCURRENT_SENDS, read_timeout=15, pool_timeout=15
            ),
        )
        await bot.initialize()
        worker = DeliveryWorker(
            create_sessionmaker(engine), "telegram", telegram_sender(bot), Pacing(rate)
        )
        task = asyncio.create_task(worker.run())
        while not await drained(reader):
            async with worker.flushed:
                await worker.flushed.wait()
        await worker.stop()
        await task
        await bot.shutdown()
        await engine.dispose()
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{base}/_emulator/stats")).json()["result"]
            sent = (await client.get(f"{base}/_emulator/messages")).json()["result"]
        texts = Counter(message["text"] for message in sent)
        return BroadcastResult(
            rate_limit=rate,
            messages=chats * per_chat,
            delivered=stats["sent"],
            seconds=stats["span"],
            throttled=stats["throttled"],
            duplicates=sum(count - 1 for count in texts.values() if count > 1),
        )
    finally:
        emulator.terminate()
        await emulator.wait()


if __name__ == "__main__":
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    result = asyncio.run(broadcast())
    print(result, f"{result.per_second:.0f}/s", f"fraction {result.fraction:.2f}")
