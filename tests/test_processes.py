"""Two bot processes on one PostgreSQL share the outbox and the schedule: every message is sent
by exactly one of them, and each official gets one digest."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

from sqlalchemy import func, insert, select

from bench.broadcast import fill_outbox
from bench.chaos import start_ocop_bot, stop_ocop_bot
from bot.emulator import TelegramEmulator
from bot.migrate import upgrade
from models.db import create_engine, create_sessionmaker
from models.domain import Role
from models.outbox import OutboxMessage
from models.users import User
from tests.conftest import reset_schema

MESSAGES, CHATS = 5_000, 1_000
OFFICIALS = (9101, 9102, 9103)


async def _prepare(url: str) -> None:
    engine = create_engine(url)
    await reset_schema(engine)
    await asyncio.to_thread(upgrade, url)
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            insert(User),
            [
                {
                    "channel": "telegram",
                    "channel_user_id": str(o),
                    "chat_id": str(o),
                    "role": Role.OFFICIAL,
                    "display_name": "",
                    "language": "vi",
                }
                for o in OFFICIALS
            ],
        )
        await fill_outbox(
            session, first_chat=2_000_000, chats=CHATS, messages=MESSAGES, prefix="load"
        )
    await engine.dispose()


async def test_two_processes_deliver_each_message_once_and_one_digest_each(
    postgres_url: str, emulator: TelegramEmulator, tmp_path: Path
) -> None:
    await _prepare(postgres_url)
    environment = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.api_url,
        "DATABASE_URL": postgres_url,
        "OCOP_DELIVERY_RATE": "1000",
        "OCOP_DIGEST_TIME": "00:00",  # due as soon as the processes start
        "OCOP_ADMINS": "",
    }
    processes = [await start_ocop_bot(tmp_path, environment) for _ in range(2)]
    try:
        await emulator.wait_for_call("sendMessage", MESSAGES + len(OFFICIALS), timeout=180)
    finally:
        logs = await asyncio.gather(*(stop_ocop_bot(p, timeout=60) for p in processes))
    assert [p.returncode for p in processes] == [0, 0], "\n".join(logs)[-3000:]

    texts = Counter(entry["text"] for entry in emulator.sent)
    assert {f"tin {n}" for n in range(MESSAGES)} <= set(texts)
    assert all(texts[f"tin {n}"] == 1 for n in range(MESSAGES))  # no duplicate
    digests = Counter(e["chat_id"] for e in emulator.sent if "Bản tin OCOP" in (e["text"] or ""))
    assert digests == {official: 1 for official in OFFICIALS}
    assert len(emulator.sent) == MESSAGES + len(OFFICIALS)

    engine = create_engine(postgres_url)
    async with create_sessionmaker(engine, read_only=True)() as session:
        states = dict(
            (
                await session.execute(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                )
            ).all()
        )
        workers = await session.scalar(select(func.count(func.distinct(OutboxMessage.leased_by))))
    await engine.dispose()
    assert states == {"sent": MESSAGES + len(OFFICIALS)}
    assert workers == 2  # both processes took part
