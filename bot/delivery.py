"""The outbox delivery worker: sends replies as soon as their event commits and queued
notifications at the times the claim planned, and turns the channel's answers into retries,
back-offs, failures or "sent"."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.errors import Blocked, Deferred, Flood, HandedOver, Rejected, Transient
from bot.send_window import SendWindow
from bot.stopping import finish_within
from handlers.events import Choice, Document, KeyButton, Reply, Request
from handlers.i18n import _, in_language
from models import keys
from models.base import utcnow
from models.db import URGENT_WRITE
from models.outbox import (
    Claimed,
    Pacing,
    Results,
    claim,
    delay_channel,
    enqueue,
    mark_unreachable,
    record,
)
from models.replies import extend_leases, hand_back, release_leases, replies_waiting
from models.users import language_of

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
# httpcore scans its whole pool for every request: a small pool is faster than a big one.
CONCURRENT_SENDS = 24
IDLE_POLL = 1.0
# A lease on a message being sent; renewed while it is (a dead process's run out soon).
LEASE = dt.timedelta(seconds=15)
# How long a reply is retried in place before it goes back to the database queue.
REPLY_RETRY_SECONDS = 60.0
CHAT_MEMORY = 10_000  # chats whose next send time is kept; older ones are forgotten
# Replies in a worker's hands, in seconds of its rate: under overload (more answers than the
# channel lets out) the rest wait in the outbox, not in memory, and their leases need no
# renewing (bench/overload.py). Replies leased as their event commits may pass it by one
# claim's slots.
HAND_SECONDS = 4.0
STOP_WRITES = 1.0  # seconds at least for the last results and leases to be written at a stop

Send = Callable[[str, Reply], Awaitable[str]]
# A channel that needs the whole outbox row (its key, template, recipient), not just the reply.
SendClaimed = Callable[[Claimed], Awaitable[str]]


def reply_of(message: Claimed) -> Reply:
    choices = tuple(
        tuple(Choice(label, data) for label, data in row) for row in (message.choices or [])
    )
    document = (
        Document(message.document_name or "file", message.document)
        if message.document is not None
        else None
    )
    keyboard = message.keyboard or {}
    rows = tuple(
        tuple(KeyButton(label, Request(request) if request else None) for label, request in row)
        for row in keyboard.get("rows") or []
    )
    return Reply(
        message.text,
        choices=choices,
        keyboard=rows,
        remove_keyboard=bool(keyboard.get("remove")),
        document=document,
    )


def keyboard_of(reply: Reply) -> dict[str, Any] | None:
    """The reply keyboard as the outbox stores it (see `reply_of`)."""
    if reply.keyboard:
        return {
            "rows": [
                [[button.label, button.request.value if button.request else None] for button in row]
                for row in reply.keyboard
            ]
        }
    return {"remove": True} if reply.remove_keyboard else None


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(60, 2**attempts))


@dataclass
class Result:
    message: Claimed
    sent_id: str | None = None
    retry_at: dt.datetime | None = None
    failed: str | None = None
    blocked: bool = False
    flood_until: dt.datetime | None = None
    done_at: dt.datetime | None = None
    deferred: bool = False
    retried: bool = True  # False: handed back untried (its chat's earlier message is waiting)
    handed_over: bool = False  # failed here, but queued on the person's other channel


class DeliveryWorker:
    """One per channel and process. Several may share a database; the claim keeps them apart.

    Two ways in: replies, leased to this worker in the transaction of the event that caused them
    and handed over by `send_now` as soon as it commits; and everything else in the outbox
    (notifications, replies of a crashed process, retries), claimed from the database. Every send
    goes through its chat's queue (one at a time, in order, the chat's interval apart) and the
    worker's overall limit. A reply that fails is retried here for a while, so its chat's later
    replies keep their order; then it goes back to the database like any retry."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        channel: str,
        send: Send,
        pacing: Pacing,
        clock: Callable[[], dt.datetime] = utcnow,
        *,
        send_claimed: SendClaimed | None = None,
    ) -> None:
        self.sessionmaker, self.channel, self.send = sessionmaker, channel, send
        self.send_claimed = send_claimed
        self.pacing, self.clock = pacing, clock
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._results: list[Result] = []
        self._renew_due = False  # the leases in hand are to be renewed with the next write
        self._have_results = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tails: dict[str, asyncio.Task[None]] = {}  # the last send queued for each chat
        self._chat_ready: dict[str, float] = {}  # loop time each chat may get its next message
        self._held: set[str] = set()  # chats whose earlier message went back to the database
        # Messages in this worker's hands, their leases renewed: from the claim (or the reply's
        # commit) until the write of their result commits, so that neither this worker's own
        # claim nor another process takes back one that went out while the write waited (the
        # database locked for longer than a lease). By id, the claim that put it there.
        self._leased: dict[int, Claimed] = {}
        self._replies_waiting = 0
        self._hand_limit = max(CONCURRENT_SENDS, int(pacing.rate * HAND_SECONDS))
        # Replies may wait in the outbox unleased (left by a crash, or queued there while this
        # worker's hands were full): until the claim finds none, new ones queue behind them.
        self._backlog = True
        self._claiming = 0  # room held by a claim while it waits for the database
        self._reserved = 0  # room held by batches writing replies (`reserve`)
        self._promised: dict[int, float] = {}  # leased in a transaction, not yet handed over
        self._queued = 0  # how often replies were queued for want of room
        # Requests on the wire at once; the rest wait for their slot and a free connection.
        self._sending = asyncio.Semaphore(CONCURRENT_SENDS)
        # The claim plans slots 1/rate apart, but tasks that wake late would go out in a burst,
        # replies come on top, and the way to the server delays some sends more than others:
        # the window counts what may have arrived, so no second there passes the limit.
        self._window = SendWindow(max(1, math.floor(pacing.rate)))
        # Notified after every write of results (tests and benchmarks wait on it).
        self.flushed = asyncio.Condition()
        # Told the outbox id of every message whose fate is written: sent (True) or failed.
        self.listeners: list[Callable[[int, bool], None]] = []

    def wake(self) -> None:
        """New messages were queued: look now rather than at the next poll."""
        self._wake.set()

    def reserve(self, wanted: int) -> int:
        """How many of the `wanted` replies being written now may be leased to this worker, to
        send at once (`send_now`); the others are queued in the outbox and claimed in their
        turn. The room is held until `leased` says what was taken: batches writing at once
        (PostgreSQL) do not share it, and each holds only what it asked for (holding all that
        was left queued the replies of the batches beside it)."""
        if self._backlog:
            return 0
        # A promise whose transaction rolled back is never handed over: it lapses with its lease.
        lapsed = time.monotonic() - LEASE.total_seconds()
        self._promised = {i: at for i, at in self._promised.items() if at > lapsed}
        held = len(self._leased) + self._claiming + self._reserved + len(self._promised)
        room = max(0, min(wanted, self._hand_limit - held))
        self._reserved += room
        return room

    def leased(self, reserved: int, ids: list[int]) -> None:
        """The `reserved` room is spent: these replies were leased to this worker, in a
        transaction whose commit hands them over (`send_now`)."""
        self._reserved -= reserved
        now = time.monotonic()
        self._promised.update((i, now) for i in ids)

    @property
    def in_hand(self) -> int:
        """Messages leased to this worker and not yet settled."""
        return len(self._leased)

    @property
    def hand_limit(self) -> int:
        return self._hand_limit

    def replies_queued(self) -> None:
        """Replies were queued in the outbox for want of `room`: new ones queue behind them
        until the claim has taken them all."""
        self._backlog = True
        self._queued += 1
        self._wake.set()

    def send_now(self, messages: list[Claimed]) -> None:
        """Send these replies, already leased to this worker by the transaction that wrote them
        (`models.outbox.queue_replies`), without waiting for a claim."""
        for message in messages:
            self._promised.pop(message.id, None)
            self._replies_waiting += 1
            self._queue(message, fast=True)

    async def run(self) -> None:
        flusher = asyncio.create_task(self._flush_loop(), name=f"{self.channel}-delivery-results")
        renewer = asyncio.create_task(self._renew_loop(), name=f"{self.channel}-delivery-leases")
        try:
            while not self._stopping.is_set():
                try:
                    await self.step()
                except Exception:
                    log.exception("delivery round failed; retrying")
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self._have_results.set()  # the flusher writes what is left, then ends
            await asyncio.gather(flusher, return_exceptions=True)
            await self._flush()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; let the sends under way finish within `grace` seconds, then hand
        what is left back to the queue (this process's leases): nothing waits for a lease to
        run out."""
        self._stopping.set()
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await finish_within(set(self._in_flight), grace)
        # The writes get what is left of the grace, and a moment at least: a database locked by
        # another process must not hold the stop for its whole retry budget, twice.
        try:
            async with asyncio.timeout_at(max(deadline, loop.time() + STOP_WRITES)):
                await self._flush()
                async with self.sessionmaker() as session, session.begin():
                    await release_leases(session, self.channel, self.name)
        except Exception:  # the leases run out by themselves
            log.warning(
                "could not write %d results or hand unsent messages back to the queue; "
                "messages sent and not yet marked go out again at the next start",
                len(self._results),
                exc_info=True,
            )

    async def step(self) -> int:
        """Claim the next second of slots and start sending; wait when there is nothing."""
        if self._replies_waiting and not self._backlog:
            # Answers in hand go first; notifications wait for the next round.
            await self._pause(self.pacing.horizon / 4)
            return 0
        if len(self._leased) >= self._hand_limit:  # full hands: claim when some are sent
            await self._pause(self.pacing.horizon / 4)
            return 0
        async with self.sessionmaker() as session, session.begin():
            # Held for the claim while it waits for the database, so that the replies written
            # meanwhile do not take the same room.
            held = len(self._leased) + self._reserved + len(self._promised)
            # No more than one claim can plan (a horizon of slots): holding the whole room left
            # the replies written meanwhile none, and queued them behind the claim's; queued,
            # they kept the worker in backlog mode, claim after claim, while the load lasted
            # (PostgreSQL's conversation benchmark: 5,000 of 6,800 replies claimed, not sent at
            # once, p99 1.7 s).
            plannable = math.ceil(self.pacing.rate * self.pacing.horizon)
            self._claiming = max(0, min(self._hand_limit - held, plannable))
            try:
                batch = await claim(
                    session,
                    self.channel,
                    self.name,
                    self.clock(),
                    self.pacing,
                    self._claiming,
                    keep=self._leased,
                )
                if self._backlog:
                    queued = self._queued
                    # Replies queued while this looked (not yet committed) keep the backlog.
                    if not await replies_waiting(session, self.channel) and queued == self._queued:
                        self._backlog = False
            finally:
                self._claiming = 0
        for message in batch:
            self._queue(message, fast=False)
        if batch:
            # Top the plan up often: each claim fills the slots up to `horizon` ahead, so
            # claiming again before they run out keeps the rate without gaps.
            await self._pause(self.pacing.horizon / 4)
        else:
            await self._pause(IDLE_POLL)
        return len(batch)

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _queue(self, message: Claimed, *, fast: bool) -> None:
        self._leased[message.id] = message
        chat = message.chat_id
        task = asyncio.create_task(self._in_turn(self._tails.get(chat), message, fast))
        self._tails[chat] = task
        self._in_flight.add(task)
        task.add_done_callback(partial(self._finished, chat))

    def _finished(self, chat: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._tails.get(chat) is task:
            del self._tails[chat]
            self._held.discard(chat)  # what it handed back is in the database, in order

    async def _in_turn(
        self, before: asyncio.Task[None] | None, message: Claimed, fast: bool
    ) -> None:
        try:
            if before is not None:
                await asyncio.wait([before])
            if fast and message.chat_id in self._held:
                # An earlier message of this chat went back to the queue: this one follows it
                # there rather than overtake it.
                self._add(Result(message, retry_at=self.clock(), retried=False))
                return
            await self._deliver(message, fast)
        finally:
            if fast:
                self._replies_waiting -= 1

    async def _deliver(self, message: Claimed, fast: bool) -> None:
        loop = asyncio.get_running_loop()
        wait = (message.slot - self.clock()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        attempts, started = message.attempts, loop.time()
        # A file is not retried in place and holds no chat: it steps aside
        # (models.outbox.stepped_aside); anything else keeps its chat's later messages behind it.
        steps_aside = message.document_name is not None
        while True:
            result = await self._attempt(message, attempts)
            retrying = result.retry_at is not None and result.failed is None
            retrying = retrying and not result.deferred
            in_place = fast and retrying and not steps_aside
            if not in_place or loop.time() - started > REPLY_RETRY_SECONDS:
                break
            # A reply is retried in place: the chat's next answers wait behind it, in order.
            attempts += 1
            delay = (result.retry_at - self.clock()).total_seconds() if result.retry_at else 0
            await asyncio.sleep(max(0.0, delay))
        if retrying and not steps_aside:
            self._held.add(message.chat_id)
        self._add(result)

    async def _attempt(self, message: Claimed, attempts: int) -> Result:
        loop = asyncio.get_running_loop()
        result = Result(message)
        try:
            async with self._sending:
                pause = self._chat_ready.get(message.chat_id, 0.0) - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                await self._window.acquire()
                try:
                    if self.send_claimed is not None:
                        result.sent_id = await self.send_claimed(message)
                    else:
                        result.sent_id = await self.send(message.chat_id, reply_of(message))
                finally:
                    self._window.release()
                result.done_at = self.clock()
                self._chat_ready[message.chat_id] = loop.time() + self.pacing.interval(
                    message.chat_id
                )
        except Deferred as error:
            result.retry_at, result.deferred = error.until, True
        except Flood as error:
            seconds = error.retry_after.total_seconds()
            result.flood_until = self.clock() + dt.timedelta(seconds=seconds)
            result.retry_at = result.flood_until
            # This chat waits it out here; the channel's shared budget is delayed when the
            # result is written (`delay_channel`), as for every process.
            self._chat_ready[message.chat_id] = loop.time() + seconds
        except Blocked as error:
            result.blocked, result.failed = True, str(error)
        except Rejected as error:
            result.failed = str(error)  # retrying the same request would fail the same way
            result.handed_over = isinstance(error, HandedOver)
        except Transient as error:  # timeouts, 5xx, connection resets
            if attempts + 1 >= MAX_ATTEMPTS:
                result.failed = f"gave up after {MAX_ATTEMPTS} attempts: {error}"
            else:
                result.retry_at = self.clock() + backoff(attempts)
        except Exception as error:  # a bug must not lose the message: keep it for later
            log.exception("sending outbox message %s", message.id)
            result.retry_at = self.clock() + backoff(attempts)
            result.failed = None if attempts + 1 < MAX_ATTEMPTS else repr(error)
        if len(self._chat_ready) > 4 * CHAT_MEMORY:
            now = loop.time()
            self._chat_ready = {c: t for c, t in self._chat_ready.items() if t > now}
        return result

    def _add(self, result: Result) -> None:
        self._results.append(result)
        self._have_results.set()

    async def _renew_loop(self) -> None:
        """Leases are short, so that a dead process's messages soon go to another; a live
        one renews those it still holds (a reply retried for a minute stays its own). Renewed
        by the results' write, in its transaction: both update the messages in hand, and as two
        transactions they deadlocked on PostgreSQL, or (one waiting for the other) put the
        results' write behind the batches waiting on SQLite."""
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            if self._leased:
                self._renew_due = True
                self._have_results.set()

    async def _flush_loop(self) -> None:
        """Write results as soon as there are any: a message sent but not yet marked sent would
        be sent again after a crash. Those that come in while one write runs go in the next."""
        while not (self._stopping.is_set() and not self._results):
            await self._have_results.wait()
            self._have_results.clear()
            await self._flush()
            # The write failed (or a renewal came due while it ran): again soon.
            if (self._results or self._renew_due) and not self._stopping.is_set():
                await asyncio.sleep(0.5)
                self._have_results.set()

    async def _flush(self) -> None:
        # One write at a time: `stop` hands leases back only after the last one is done.
        async with self._flushing:
            await self._flush_now()
        # Every round ends here, so waiters re-check at least once per round.
        async with self.flushed:
            self.flushed.notify_all()

    async def _flush_now(self) -> None:
        results, self._results = self._results, []
        renew, self._renew_due = self._renew_due, False
        if results or renew:
            try:
                await self._record(results, renew)
            except BaseException as error:
                # Keep them: forgetting would leave the messages leased, then sent twice.
                self._results = results + self._results
                self._renew_due = self._renew_due or renew
                if not isinstance(error, Exception):
                    raise
                log.exception("recording %d delivery results failed; will retry", len(results))
            else:
                for result in results:
                    # Out of this worker's hands now, unless claimed again meanwhile.
                    if self._leased.get(result.message.id) is result.message:
                        del self._leased[result.message.id]
                    if result.sent_id is not None or result.failed is not None:
                        for listener in self.listeners:
                            listener(result.message.id, result.sent_id is not None)

    async def _tell_lost_file(
        self, session: AsyncSession, message: Claimed, now: dt.datetime
    ) -> None:
        """A file given up on (refused, or failing every attempt) is not waited for in
        silence: its person is told, in the same transaction, and asked to ask again."""
        with in_language(await language_of(session, self.channel, message.chat_id)):
            text = _(
                "Sorry, the file {name} could not be sent to you. Please ask for it again in a "
                "few minutes; if it still does not arrive, contact the OCOP office."
            ).format(name=f"<b>{html.escape(message.document_name or '')}</b>")
        await enqueue(
            session,
            key=keys.undelivered(message.key or f"outbox:{message.id}"),
            channel=self.channel,
            chat_id=message.chat_id,
            user_id=message.user_id,
            text=text,
            choices=None,
            document_name=None,
            document=None,
            now=now,
        )

    async def _record(self, results: list[Result], renew: bool = False) -> None:
        """Write what the sends came to and, with `renew`, extend the leases of the messages
        still in hand, in one transaction."""
        now = self.clock()
        batch = Results()
        handed_back: list[int] = []
        blocked: set[str] = set()
        lost_files: list[Claimed] = []
        for result in results:
            message = result.message
            if result.sent_id is not None:
                batch.sent.append((message.id, result.sent_id))
                # The chat's next message is spaced from when this one really went out.
                batch.chat_sent.append((message.chat_id, result.done_at or now))
            elif result.failed is not None:
                batch.failed.append((message.id, result.failed))
                if result.blocked:
                    blocked.add(message.chat_id)
                elif message.document_name is not None and not result.handed_over:
                    lost_files.append(message)
            elif result.deferred:
                batch.deferred.append((message.id, result.retry_at or now))
            elif not result.retried:
                handed_back.append(message.id)
            else:
                batch.retry.append((message.id, result.retry_at or now))
        flood = max((r.flood_until for r in results if r.flood_until), default=None)
        async with self.sessionmaker() as session, session.begin():
            # Before any other write waiting in this process: until this commits, a message
            # the channel accepted would be sent again if the process died.
            await session.connection(execution_options=URGENT_WRITE)
            if flood is not None:  # the channel's row first, then its chats, as a claim does
                await delay_channel(session, self.channel, flood)
            await record(session, self.channel, batch, now, self.pacing)
            await hand_back(session, handed_back)
            for chat_id in blocked:
                await mark_unreachable(session, self.channel, chat_id, now)
            for message in lost_files:
                await self._tell_lost_file(session, message, now)
            if renew:  # those just settled are no longer SENDING: extend_leases skips them
                await extend_leases(session, list(self._leased), self.name, now + LEASE)
        if batch.retry or handed_back or lost_files:
            self.wake()
