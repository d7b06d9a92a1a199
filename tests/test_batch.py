"""Group commit (bot/batch.py): events that arrive together share a transaction, yet each one is
committed before its caller goes on, one bad event loses nothing of the others, and a chat's
events never overtake each other."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.batch import Batcher
from handlers.events import Event, EventKind
from handlers.router import Prepared
from models.conversations import Conversation
from models.db import create_sessionmaker
from models.users import ProcessedUpdate, User

pytestmark = pytest.mark.both_databases


def _event(user: int, update: int) -> Event:
    return Event("telegram", str(user), str(user), EventKind.TEXT, str(update), text="x")


async def _remember(session: AsyncSession, prepared: Prepared, event: Event) -> int:
    """Work that writes to the event's conversation: appends its update id to the answers."""
    conversation = prepared.conversations[(event.channel, event.chat_id)]
    seen = [*conversation.answers.get("seen", []), event.update_id]
    conversation.answers = {"seen": seen}
    await session.flush()
    return len(seen)


async def _count(engine: AsyncEngine, model: type[User] | type[ProcessedUpdate]) -> int:
    async with create_sessionmaker(engine, read_only=True)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_events_arriving_together_share_a_transaction(engine: AsyncEngine) -> None:
    batcher = Batcher(create_sessionmaker(engine))
    transactions: list[int] = []

    async def work(event: Event, session: AsyncSession, prepared: Prepared) -> int:
        transactions.append(id(session))
        return await _remember(session, prepared, event)

    events = [_event(100 + n, n) for n in range(30)]
    results = await asyncio.gather(
        *(batcher.run(e, lambda s, p, e=e: work(e, s, p)) for e in events)
    )

    assert results == [1] * 30
    assert len(set(transactions)) < 30  # grouped, not one transaction each
    assert await _count(engine, User) == 30
    assert await _count(engine, ProcessedUpdate) == 30


async def test_a_failing_event_costs_the_others_nothing(engine: AsyncEngine) -> None:
    batcher = Batcher(create_sessionmaker(engine))

    async def work(event: Event, session: AsyncSession, prepared: Prepared) -> int:
        result = await _remember(session, prepared, event)
        if event.user_id == "202":
            raise RuntimeError("a bug in one handler")
        return result

    events = [_event(200 + n, 1000 + n) for n in range(5)]
    outcomes = await asyncio.gather(
        *(batcher.run(e, lambda s, p, e=e: work(e, s, p)) for e in events),
        return_exceptions=True,
    )

    assert [isinstance(o, RuntimeError) for o in outcomes] == [False, False, True, False, False]
    async with create_sessionmaker(engine, read_only=True)() as session:
        stored = {
            c.chat_id: c.answers["seen"]
            for c in await session.scalars(select(Conversation))
            if c.answers
        }
        claimed = set(await session.scalars(select(ProcessedUpdate.update_id)))
    # The others' answers are committed; the failed event left nothing behind, not even the
    # claim of its update id, so Telegram's redelivery of it will be handled afresh.
    assert stored == {"200": ["1000"], "201": ["1001"], "203": ["1003"], "204": ["1004"]}
    assert claimed == {"1000", "1001", "1003", "1004"}


async def test_one_chats_events_run_in_order_across_batches(engine: AsyncEngine) -> None:
    batcher = Batcher(create_sessionmaker(engine), parallel=3, backlog=0)  # runners at once

    async def work(event: Event, session: AsyncSession, prepared: Prepared) -> int:
        return await _remember(session, prepared, event)

    # Three chats, each sending four updates at once.
    events = [_event(300 + chat, 2000 + 10 * chat + n) for n in range(4) for chat in range(3)]
    await asyncio.gather(*(batcher.run(e, lambda s, p, e=e: work(e, s, p)) for e in events))

    async with create_sessionmaker(engine, read_only=True)() as session:
        stored = {c.chat_id: c.answers["seen"] for c in await session.scalars(select(Conversation))}
    assert stored == {
        str(300 + chat): [str(2000 + 10 * chat + n) for n in range(4)] for chat in range(3)
    }


async def test_a_redelivered_update_is_not_claimed_twice(engine: AsyncEngine) -> None:
    batcher = Batcher(create_sessionmaker(engine))

    async def fresh(event: Event, _session: AsyncSession, prepared: Prepared) -> bool:
        return (event.channel, event.update_id) in prepared.fresh

    first = _event(400, 4000)
    assert await batcher.run(first, lambda s, p: fresh(first, s, p))
    assert not await batcher.run(first, lambda s, p: fresh(first, s, p))
