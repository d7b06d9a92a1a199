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


async def test_delivery_results_take_the_write_turn_before_waiting_events(tmp_path: Path) -> None:
    """A message Telegram accepted is sent again if the process dies before it is marked sent:
    that write goes before the events queued for the writer, not after them."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ocop.db")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE log (what TEXT)"))
    sessions = create_sessionmaker(engine)
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with sessions() as session, session.begin():
            await session.execute(text("INSERT INTO log VALUES ('first')"))
            holding.set()
            await release.wait()
        order.append("first")

    async def write(what: str, urgent: bool) -> None:
        async with sessions() as session, session.begin():
            if urgent:
                await session.connection(execution_options=database.URGENT_WRITE)
            await session.execute(text("INSERT INTO log VALUES (:what)"), {"what": what})
        order.append(what)

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiting = [asyncio.create_task(write(f"event {n}", False)) for n in range(3)]
    waiting.append(asyncio.create_task(write("results", True)))
    turns = database._WRITERS[str((tmp_path / "ocop.db").resolve())]._locks[
        asyncio.get_running_loop()
    ]
    # Until all four wait for the turn (the lock has no event to wait on).
    while sum(len(queue) for queue in turns._waiting) < len(waiting):  # noqa: ASYNC110
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, *waiting)
    assert order[:2] == ["first", "results"]  # the events go after, in the order they came
    assert sorted(order[2:]) == ["event 0", "event 1", "event 2"]
    await engine.dispose()
