"""What every receiver does with the updates it gets, before it acknowledges them.

`Recorder.record` applies the per-sender limits, writes the updates to the inbox and commits,
then hands the new ones to the inbox worker. Only when it returns may the receiver confirm the
updates to the channel (advance the polling offset, answer the webhook 200): if it raises, the
channel keeps them and sends them again. While the database cannot record, each chat that
wrote is told once that the system is busy (their message is kept by the channel meanwhile).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.fairness import SenderLimits
from bot.inbox import InboxWorker
from handlers.events import Notice, Reply
from handlers.i18n import _, in_language
from handlers.notices import queue as queue_notices
from models.db import create_sessionmaker
from models.inbox import InboxStatus, Incoming, record

log = logging.getLogger(__name__)

Tell = Callable[[str, str], Awaitable[None]]  # (chat id, text): a message sent at once


class Recorder:
    def __init__(
        self,
        engine: AsyncEngine,
        inbox: InboxWorker,
        limits: SenderLimits,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.sessionmaker = create_sessionmaker(engine)
        self.inbox, self.limits, self.clock = inbox, limits, clock
        self._told_busy: set[tuple[str, str]] = set()

    async def record(self, updates: Sequence[Incoming], tell: Tell | None = None) -> None:
        """Record `updates` durably (raises when the database could not); `tell` reaches a
        chat directly, to say the system is busy when recording fails."""
        if not updates:
            return
        allowed: list[Incoming] = []
        excess: list[Incoming] = []
        floods: list[Incoming] = []
        for update in updates:
            ok, first = self.limits.take(f"{update.channel}:{update.user_id}")
            (allowed if ok else excess).append(update)
            if first:
                floods.append(update)
        now = self.clock()
        try:
            async with self.sessionmaker() as session, session.begin():
                new = await record(session, allowed, now)
                await record(session, excess, now, InboxStatus.EXCESS)
                if floods:
                    await queue_notices(session, [_flood_notice(u) for u in floods], now)
        except Exception:
            if tell is not None:
                await self._tell_busy(updates, tell)
            raise
        for update in updates:
            self._told_busy.discard((update.channel, update.chat_id))
        self.inbox.offer(new)
        if floods:
            self.inbox.queued()

    async def _tell_busy(self, updates: Sequence[Incoming], tell: Tell) -> None:
        with in_language(None):
            text = _(
                "The system is busy right now and could not take your message yet. It will be "
                "handled as soon as possible; there is no need to send it again."
            )
        for chat in {(u.channel, u.chat_id) for u in updates} - self._told_busy:
            self._told_busy.add(chat)
            try:
                await asyncio.wait_for(tell(chat[1], text), timeout=10)
            except Exception as error:
                log.info("could not tell chat %s the system is busy: %s", chat[1], error)


def _flood_notice(update: Incoming) -> Notice:
    with in_language(None):
        text = _(
            "You are sending messages faster than I can read them, so I skipped some. Please "
            "wait a moment, then send your answer again."
        )
    return Notice(
        update.channel,
        update.chat_id,
        (Reply(text),),
        key=f"flood:{update.channel}:{update.chat_id}:{update.update_id}",
    )
