"""SQLite runs in the event loop's thread: waiting for another process's write lock must not
stop the loop, and the wait ends with a clear error rather than a frozen bot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.batch import Batcher
from handlers.events import Event, EventKind
from handlers.router import Prepared
from models import db as database
from models.all import Base
from models.db import create_engine, create_sessionmaker


def _event(user: int) -> Event:
    return Event("telegram", str(user), str(user), EventKind.TEXT, str(user), text="x")


async def _conversation_count(_session: AsyncSession, prepared: Prepared) -> int:
    return len(prepared.conversations)


async def test_another_process_writing_does_not_freeze_the_bot(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/ocop.db"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    batcher = Batcher(create_sessionmaker(engine))

    other = sqlite3.connect(tmp_path / "ocop.db", isolation_level=None)  # "another process"
    other.execute("BEGIN IMMEDIATE")
    waiting = asyncio.create_task(batcher.run(_event(1), _conversation_count))
    for _ in range(5):  # the event's first attempt to begin has been made and refused
        await asyncio.sleep(0)

    # Meanwhile the bot still serves: a reader goes through while the event waits, which a
    # loop stuck in SQLite's busy handler could not do until the event had given up.
    async with create_sessionmaker(engine, read_only=True)() as session:
        assert await session.scalar(text("SELECT count(*) FROM conversations")) == 0
    assert not waiting.done()

    other.execute("COMMIT")
    assert await waiting == 1
    other.close()
    await engine.dispose()


async def test_a_lock_held_too_long_fails_the_event_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "BUSY_SECONDS", 0.3)
    url = f"sqlite+aiosqlite:///{tmp_path}/ocop.db"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    batcher = Batcher(create_sessionmaker(engine))
    other = sqlite3.connect(tmp_path / "ocop.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    results = await asyncio.gather(
        *(batcher.run(_event(n), _conversation_count) for n in range(3)), return_exceptions=True
    )
    # Every event of the batch is told (each caller apologizes), none is retried for another
    # 0.3 s each, and the bot's own writer lock is free again.
    assert all(isinstance(r, Exception) and database.is_busy(r) for r in results)
    other.execute("COMMIT")
    assert await batcher.run(_event(9), _conversation_count) == 1
    other.close()
    await engine.dispose()
