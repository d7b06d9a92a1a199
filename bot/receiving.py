"""What every receiver does with the updates it gets, before it acknowledges them.

`Recorder.record` applies the per-sender limits, writes the updates to the inbox and commits,
then hands the new ones to the inbox worker. Of a flood, the first update over the sender's rate
is kept to be answered, in turn, with one notice; the rest are recorded as excess. Only when it
returns may the receiver confirm the updates to the channel (advance the polling offset, answer
the webhook 200): if it raises, the channel keeps them and sends them again. While the database
cannot record, each chat that wrote is told once that the system is busy (their message is
kept by the channel meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.fairness import SenderLimits
from bot.inbox import InboxWorker
from handlers.i18n import _, in_language
from models.base import utcnow
from models.db import create_sessionmaker
from models.inbox import EXCESS_NOTICE, InboxStatus, Incoming, record

log = logging.getLogger(__name__)

DECIDED_MEMORY = 10_000
MAX_RETRY_DELAY = 30.0  # seconds between attempts to record while the database cannot
Tell = Callable[[str, str], Awaitable[None]]  # (chat id, text): a message sent at once


class Recorder:
    def __init__(
        self,
        engine: AsyncEngine,
        inbox: InboxWorker,
        limits: SenderLimits,
    ) -> None:
        self.sessionmaker = create_sessionmaker(engine)
        self.inbox, self.limits = inbox, limits
        self._told_busy: set[tuple[str, str]] = set()
        self._decided: dict[tuple[str, str], tuple[bool, bool]] = {}  # until recorded

    async def record(self, updates: Sequence[Incoming], tell: Tell | None = None) -> None:
        """Record `updates` durably (raises when the database could not); `tell` reaches a
        chat directly, to say the system is busy when recording fails."""
        if not updates:
            return
        allowed: list[Incoming] = []
        excess: list[Incoming] = []
        for update in updates:
            # An update offered again after a failed insert is judged as it was the first time.
            key = (update.channel, update.update_id)
            decided = self._decided.get(key)
            if decided is None:
                if len(self._decided) >= DECIDED_MEMORY:  # a long outage: forget, not grow
                    self._decided.clear()
                decided = self._decided[key] = self.limits.take(
                    f"{update.channel}:{update.user_id}"
                )
            ok, first = decided
            if ok:
                allowed.append(update)
            elif first:  # answered, in turn, with the notice about the flood
                allowed.append(replace(update, payload={**update.payload, EXCESS_NOTICE: True}))
            else:
                excess.append(update)
        now = utcnow()
        try:
            async with self.sessionmaker() as session, session.begin():
                new = await record(session, allowed, now)
                await record(session, excess, now, InboxStatus.EXCESS)
        except Exception:
            if tell is not None:
                await self._tell_busy(updates, tell)
            raise
        for update in updates:
            self._told_busy.discard((update.channel, update.chat_id))
            self._decided.pop((update.channel, update.update_id), None)
        self.inbox.offer(new)

    async def record_until_done(
        self, updates: Sequence[Incoming], tell: Tell | None, stopping: asyncio.Event
    ) -> bool:
        """Record, retrying with a growing pause while the database cannot; False if
        `stopping` was set first (the updates stay unconfirmed at the channel)."""
        delay = 0.5
        while not stopping.is_set():
            try:
                await self.record(updates, tell)
                return True
            except Exception as error:
                log.warning("could not record %d updates (%s); retrying", len(updates), error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                delay = min(MAX_RETRY_DELAY, delay * 2)
        return False

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
