"""The runtime's spine: takes updates from the inbox, handles them, hands their replies over.

Receivers (bot/channels) record updates in the inbox before they acknowledge them, then `offer`
them here. The worker runs each chat's updates strictly one after the other, different chats
concurrently, through the group commit (bot/batch.py); an update's inbox row is deleted, its
effect written and its replies queued in the outbox in one transaction, then the replies go to
the channel's delivery worker at once. A chat has at most one update in flight, so a chat with
a backlog of thousands takes one turn like any other.

Memory is bounded: at most `MEMORY` updates are kept here; the rest wait in the database and are
read back in turn (`models.inbox.next_pending`), as after a restart or from another process.

Failures are honest: when the database is unavailable the update stays in the inbox, its chat
is told once that the system is busy and that the message will be handled shortly, and it is
retried with back-off. An update whose handling fails (a bug) is retried twice, then dropped
with an apology that says it was not saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.batch import NOT_ITS_TURN, Batcher
from bot.delivery import LEASE, DeliveryWorker, keyboard_of
from bot.stopping import finish_within
from handlers.context import Services
from handlers.events import Event, Outcome, Reply
from handlers.i18n import _, in_language
from handlers.notices import serialize_choices
from handlers.router import Prepared, handle_event
from models import keys
from models.base import utcnow
from models.db import create_sessionmaker, is_unavailable
from models.inbox import EXCESS_NOTICE, Pending, drop, next_pending, pending_of, waiting
from models.outbox import Claimed
from models.replies import Outgoing, queue_replies

log = logging.getLogger(__name__)

MEMORY = 2000  # updates kept in memory; the others are read back from the inbox in turn
IN_FLIGHT = 1000  # chats handled at once (their events share the batches' transactions)
SCAN_WHILE_BEHIND = 0.05  # how often the inbox is read while updates wait only there
FOLLOW_ROWS = 20  # a chat's updates read back from the database at a time
POLL_SECONDS = 1.0  # how often the inbox is read for updates this process was not offered
CHAT_ROWS_MEMORY = 100_000
ATTEMPTS = 3  # an update whose handling fails this often is dropped with an apology
MAX_BACKOFF = 30.0
ACKNOWLEDGE_SECONDS = 5.0  # a pressed button's answer is not worth holding its chat longer


class Channel(Protocol):
    """What the runtime needs of a channel adapter."""

    name: str
    delivery: DeliveryWorker

    def decode(self, payload: dict[str, Any]) -> tuple[Event, Any] | None:
        """The neutral event of a recorded update, with what `acknowledge` needs; None for an
        update the bot ignores."""

    async def prepare(self, session: AsyncSession, event: Event) -> Event:
        """The event as the handlers should see it (Zalo: a typed number becomes a choice)."""

    async def replies(self, session: AsyncSession, event: Event, outcome: Outcome) -> list[Reply]:
        """The messages to answer with, in the event's transaction."""

    async def finish(self, session: AsyncSession, outcomes: Sequence[tuple[str, Outcome]]) -> None:
        """In the batch's transaction, before its replies are queued: what the channel decides
        for the batch's events together, each given as (chat id, outcome)."""

    async def acknowledge(self, extra: Any, outcome: Outcome) -> None:
        """After the commit: what the channel wants besides messages (a pressed button's
        answer). Best effort."""

    async def tell(self, chat_id: str, text: str) -> None:
        """Send a message now, outside the outbox (the database may be what failed)."""

    async def fetch(self, file_id: str) -> bytes:
        """A file the user sent, by the channel's id for it (long tasks read imports so)."""


@dataclass
class Handled:
    """One event's result, completed by the batch's `finish` before it commits."""

    row: Pending
    channel: Channel
    outcome: Outcome
    outgoing: list[Outgoing]
    fast: list[Claimed] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)


Done = Callable[[Pending, list[int]], None]


class InboxWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        services: Services,
        channels: Mapping[str, Channel],
        *,
        queued: Callable[[], None] = lambda: None,
        batcher: Batcher | None = None,
    ) -> None:
        self.services, self.channels, self.queued = services, dict(channels), queued
        self.tasks_queued: Callable[[], None] = lambda: None
        self.reader = create_sessionmaker(engine, read_only=True)
        self.writer = create_sessionmaker(engine)
        self.batcher = batcher or Batcher(self.writer)
        self.batcher.finish = self._finish
        self._chats: dict[tuple[str, str], deque[Pending]] = {}  # offered, not yet handled
        self._known: set[int] = set()
        # Until a scan finds every pending update in hand (memory overflowed, or a restart left
        # a backlog), receivers' updates stay in the database and are read back in order.
        self._overflowed = True
        self._follow: set[tuple[str, str]] = set()  # chats whose backlog is in the database
        # Offers left in the database while a read of it was on its way: the read's snapshot
        # may predate them, so it cannot tell that everything is in hand.
        self._left_behind = False
        self._skipped: set[tuple[str, str]] = set()  # followed chats offered an update
        self._refills: set[asyncio.Task[None]] = set()
        self._active: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._retry_at: dict[tuple[str, str], float] = {}
        self._failures: dict[int, int] = {}
        self._told_busy: set[tuple[str, str]] = set()
        self._chat_rows: set[tuple[str, str]] = set()  # chats whose delivery row exists
        self._outage = 0  # consecutive unavailable failures: the back-off
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        # Told each update handled (committed), with its replies' outbox ids (tests wait on it).
        self.listeners: list[Done] = []

    # --- taking work ---------------------------------------------------------------------

    def offer(self, rows: Sequence[Pending]) -> None:
        """Updates just recorded by this process's receivers. Once memory has overflowed,
        they are left in the database until the backlog there is read back, so that no
        chat's later update is held here while an earlier one waits in the inbox."""
        if self._overflowed:
            self._left_behind = self._left_behind or bool(rows)
        else:
            for row in rows:
                if (row.channel, row.chat_id) in self._follow:
                    self._skipped.add((row.channel, row.chat_id))
            self._add([r for r in rows if (r.channel, r.chat_id) not in self._follow], False)
        self._wake.set()

    def _add(self, rows: Sequence[Pending], from_database: bool) -> None:
        for row in rows:
            if row.id in self._known:
                continue
            if len(self._known) >= MEMORY:
                self._overflowed = True  # the rest is in the database; read back in turn
                self._left_behind = True
                break
            chat = (row.channel, row.chat_id)
            self._known.add(row.id)
            self._chats.setdefault(chat, deque()).append(row)
            if from_database:
                self._follow.add(chat)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        scanned_at = -POLL_SECONDS
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._start_ready()
            every = SCAN_WHILE_BEHIND if self._overflowed else POLL_SECONDS
            if loop.time() - scanned_at >= every and len(self._active) < IN_FLIGHT:
                scanned_at = loop.time()
                await self._scan()
                self._start_ready()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wait(loop))

    def _next_wait(self, loop: asyncio.AbstractEventLoop) -> float:
        waits = [SCAN_WHILE_BEHIND if self._overflowed else POLL_SECONDS]
        if self._retry_at:
            waits.append(min(self._retry_at.values()) - loop.time())
        return max(0.01, min(waits))

    async def _scan(self) -> None:
        """Read the oldest pending update of chats this process holds nothing of."""
        room = min(IN_FLIGHT - len(self._active), MEMORY - len(self._known))
        if room <= 0:
            return
        busy = frozenset(self._active) | frozenset(self._chats)
        self._left_behind = False
        try:
            async with self.reader() as session:
                rows = await next_pending(session, room, busy)
                if self._overflowed and not rows and not self._left_behind:
                    # Everything pending is in hand: the receivers' updates may come here again.
                    # (`_known` holds the updates being handled too.) An offer made while the
                    # count ran may be missing from it: the backlog mode stays for it.
                    behind = await waiting(session) > len(self._known)
                    self._overflowed = behind or self._left_behind
        except Exception as error:
            log.warning("reading the inbox failed (%s); retrying", error)
            return
        self._add(rows, True)

    async def _refill(self, chat: tuple[str, str]) -> None:
        """The next updates of a chat whose backlog is in the database, in order. The chat
        stays followed (receivers leave its updates in the database) until a read finds
        nothing and no update of it came meanwhile; until then, no later update of the chat
        can be taken from memory ahead of an earlier one still in the database."""
        while True:
            self._skipped.discard(chat)
            try:
                async with self.reader() as session:
                    rows = await pending_of(session, chat[0], chat[1], FOLLOW_ROWS)
            except Exception as error:  # the next scan reads the chat again
                log.warning("reading the inbox failed (%s); retrying", error)
                self._follow.discard(chat)
                self._skipped.discard(chat)
                return
            if chat in self._active or chat in self._chats:
                break  # a scan took its oldest update meanwhile; it is followed from there
            if rows:
                self._add(rows, True)
                break
            if chat not in self._skipped:
                self._follow.discard(chat)
                break
        self._wake.set()

    def _start_ready(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for chat, rows in list(self._chats.items()):
            if len(self._active) >= IN_FLIGHT:
                return
            if chat in self._active or self._retry_at.get(chat, 0.0) > now:
                continue
            row = rows.popleft()
            if not rows:
                del self._chats[chat]
            self._retry_at.pop(chat, None)
            task = asyncio.create_task(self._handle(row), name=f"update-{row.channel}-{row.id}")
            self._active[chat] = task

    # --- handling ------------------------------------------------------------------------

    async def _handle(self, row: Pending) -> None:
        chat = (row.channel, row.chat_id)
        try:
            await self._handle_row(row)
        finally:
            del self._active[chat]
            if chat in self._follow and chat not in self._chats:
                if not self._stopping.is_set():
                    task = asyncio.create_task(self._refill(chat))
                    self._refills.add(task)
                    task.add_done_callback(self._refills.discard)
            self._wake.set()

    async def _handle_row(self, row: Pending) -> None:
        channel = self.channels.get(row.channel)
        decoded = None if channel is None else row.decoded or channel.decode(row.payload)
        if channel is None or decoded is None:
            await self._forget(row, None)
            return
        event, extra = decoded
        try:
            result = await self.batcher.run(event, self._work(row, channel, event), row.id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self._failed(row, channel, error)
            return
        self._outage = 0
        self._told_busy.discard((row.channel, row.chat_id))
        if result is NOT_ITS_TURN:
            # Handled by another process, or an older update of the chat waits in the
            # database: whatever this process holds of the chat is read again in turn, at
            # once (a followed chat is read back as soon as its update in hand is done).
            self._drop_chat((row.channel, row.chat_id))
            self._follow.add((row.channel, row.chat_id))
            self._known.discard(row.id)
            self._failures.pop(row.id, None)
            return
        self._known.discard(row.id)
        self._failures.pop(row.id, None)
        handled: Handled = result
        if handled.outbox_ids:  # its delivery row is committed now
            if len(self._chat_rows) >= CHAT_ROWS_MEMORY:
                self._chat_rows.clear()
            self._chat_rows.add((row.channel, row.chat_id))
        if handled.fast:
            channel.delivery.send_now(handled.fast)
        if handled.outcome.notices or len(handled.fast) < len(handled.outbox_ids):
            self.queued()
        if handled.outcome.tasks:
            self.tasks_queued()
        outcome = handled.outcome
        if outcome.toast is not None or extra is not None or outcome.spent_buttons is not None:
            await self._acknowledge(channel, extra, handled.outcome)
        for listener in self.listeners:
            listener(row, handled.outbox_ids)

    def _work(self, row: Pending, channel: Channel, event: Event) -> Any:
        async def work(session: AsyncSession, prepared: Prepared) -> Handled:
            progress_replies: list[Reply] = []

            async def progress(text: str) -> None:  # sent first, with the replies
                progress_replies.append(Reply(text))

            if row.payload.get(EXCESS_NOTICE):
                return await self._flood_notice(session, row, channel, event, prepared)
            answered = await channel.prepare(session, event)
            outcome = await handle_event(session, self.services, answered, prepared, progress)
            replies = progress_replies + await channel.replies(session, answered, outcome)
            return self._handled(row, channel, event, prepared, outcome, replies)

        return work

    def _handled(
        self,
        row: Pending,
        channel: Channel,
        event: Event,
        prepared: Prepared,
        outcome: Outcome,
        replies: list[Reply],
    ) -> Handled:
        user_id = prepared.users[(event.channel, event.user_id)].id
        outgoing = [
            Outgoing(
                key=keys.reply(row.channel, row.update_id, index),
                channel=row.channel,
                chat_id=row.chat_id,
                user_id=user_id,
                text=reply.text,
                choices=serialize_choices(reply),
                keyboard=keyboard_of(reply),
                document_name=reply.document.file_name if reply.document else None,
                document=reply.document.content if reply.document else None,
            )
            for index, reply in enumerate(replies)
        ]
        return Handled(row, channel, outcome, outgoing)

    async def _flood_notice(
        self,
        session: AsyncSession,
        row: Pending,
        channel: Channel,
        event: Event,
        prepared: Prepared,
    ) -> Handled:
        """The first message over its sender's rate is not handled: it is answered, in the
        chat's order, with the one notice that some messages were skipped."""
        user = prepared.users[(event.channel, event.user_id)]
        with in_language(user.language):
            outcome = Outcome([Reply(_flood_text())])
            replies = await channel.replies(session, event, outcome)
        return self._handled(row, channel, event, prepared, outcome, replies)

    async def _finish(self, session: AsyncSession, results: list[Any]) -> None:
        """The batch's replies in one statement per channel, leased to its delivery worker.
        Times on the delivery's clock (the wall clock), not the services' (a test's may be
        anywhere)."""
        now = utcnow()
        by_channel: dict[str, list[Handled]] = {}
        for result in results:
            if isinstance(result, Handled):
                by_channel.setdefault(result.channel.name, []).append(result)
        for name, handled in by_channel.items():
            channel = self.channels[name]
            await channel.finish(session, [(each.row.chat_id, each.outcome) for each in handled])
            worker = channel.delivery
            messages = [message for each in handled for message in each.outgoing]
            room = worker.reserve(len(messages))
            fast: list[Claimed] = []
            try:
                fast, ids, overflow = await queue_replies(
                    session,
                    messages,
                    now,
                    worker=worker.name if room else None,
                    lease=LEASE,
                    known_chats=self._chat_rows,
                    room=room,
                )
            finally:
                worker.leased(room, [message.id for message in fast])
            if overflow:
                worker.replies_queued()

            by_id = {message.id: message for message in fast}
            for each in handled:
                each.outbox_ids = [ids[m.key] for m in each.outgoing if m.key in ids]
                each.fast = [by_id[i] for i in each.outbox_ids if i in by_id]

    async def _acknowledge(self, channel: Channel, extra: Any, outcome: Outcome) -> None:
        try:
            async with asyncio.timeout(ACKNOWLEDGE_SECONDS):  # no task of its own, as wait_for's
                await channel.acknowledge(extra, outcome)
        except Exception as error:  # a button's spinner stops by itself
            log.info("could not acknowledge on %s: %s", channel.name, error)

    # --- failures ------------------------------------------------------------------------

    async def _failed(self, row: Pending, channel: Channel, error: Exception) -> None:
        chat = (row.channel, row.chat_id)
        loop = asyncio.get_running_loop()
        if is_unavailable(error):
            # Nothing was written: the update waits in the inbox for the database.
            self._outage += 1
            delay = min(MAX_BACKOFF, 0.5 * 2 ** min(self._outage, 6))
            log.warning("database unavailable (%s); update retried in %.1f s", error, delay)
            self._requeue(row, loop.time() + delay)
            if chat not in self._told_busy:
                self._told_busy.add(chat)
                await self._tell(channel, row, _busy_text)
            return
        failures = self._failures.get(row.id, 0) + 1
        self._failures[row.id] = failures
        log.error("handling update %s failed (%d)", row.update_id, failures, exc_info=error)
        if failures < ATTEMPTS:
            self._requeue(row, loop.time() + 0.2 * failures)
            return
        await self._forget(row, channel)

    def _requeue(self, row: Pending, at: float) -> None:
        chat = (row.channel, row.chat_id)
        self._chats.setdefault(chat, deque()).appendleft(row)
        self._retry_at[chat] = at

    def _drop_chat(self, chat: tuple[str, str]) -> None:
        for row in self._chats.pop(chat, ()):
            self._known.discard(row.id)

    async def _forget(self, row: Pending, channel: Channel | None) -> None:
        """An update that will never be handled: dropped, and its sender told so."""
        self._failures.pop(row.id, None)
        try:
            async with self.writer() as session, session.begin():
                await drop(session, [row.id])
        except Exception as error:
            log.warning("could not drop update %s (%s); retried later", row.update_id, error)
            self._requeue(row, asyncio.get_running_loop().time() + MAX_BACKOFF)
            return
        self._known.discard(row.id)
        if channel is not None:
            await self._tell(channel, row, _failed_text)
        for listener in self.listeners:
            listener(row, [])

    async def _tell(self, channel: Channel, row: Pending, text: Callable[[], str]) -> None:
        with in_language(None):
            message = text()
        try:
            await channel.tell(row.chat_id, message)
        except Exception as error:
            log.info("could not tell chat %s: %s", row.chat_id, error)

    # --- stopping ------------------------------------------------------------------------

    async def stop(self, grace: float = 5.0) -> None:
        """Take no more updates; let those in flight commit within `grace` seconds, and cancel
        the rest (rolled back: they stay in the inbox for the next start)."""
        self._stopping.set()
        self._wake.set()
        await finish_within(list(self._active.values()), grace)
        self._chats.clear()
        self._known.clear()


def _busy_text() -> str:
    return _(
        "The system is busy right now. Your last message has been received and will be "
        "handled shortly; there is no need to send it again."
    )


def _flood_text() -> str:
    return _(
        "You are sending messages faster than I can read them, so I skipped some. Please "
        "wait a moment, then send your answer again."
    )


def _failed_text() -> str:
    return _(
        "Sorry, your last message could not be handled and was not saved. Your earlier "
        "answers are kept; please send it again."
    )
