"""The outbox delivery worker: sends queued notifications at the times the claim planned,
and turns Telegram's answers into retries, back-offs, failures or "sent"."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.channels.telegram import markup
from bot.channels.text import split_message
from handlers.events import Choice, Document, Reply
from models.base import utcnow
from models.outbox import (
    Claimed,
    Pacing,
    Results,
    claim,
    delay_channel,
    mark_unreachable,
    record,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
# httpcore scans its whole pool for every request: a small pool is faster than a big one.
CONCURRENT_SENDS = 24
RATE_MARGIN = 0.95
IDLE_POLL = 1.0

Send = Callable[[str, Reply], Awaitable[str]]


def reply_of(message: Claimed) -> Reply:
    choices = tuple(
        tuple(Choice(label, data) for label, data in row) for row in (message.choices or [])
    )
    document = (
        Document(message.document_name or "file", message.document)
        if message.document is not None
        else None
    )
    return Reply(message.text, choices=choices, document=document)


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(60, 2**attempts))


@dataclass
class Result:
    message: Claimed
    telegram_id: str | None = None
    retry_at: dt.datetime | None = None
    failed: str | None = None
    blocked: bool = False
    flood_until: dt.datetime | None = None
    done_at: dt.datetime | None = None


class DeliveryWorker:
    """One per process. Several may share a database; the claim keeps them apart."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        channel: str,
        send: Send,
        pacing: Pacing,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.sessionmaker, self.channel, self.send = sessionmaker, channel, send
        self.pacing, self.clock = pacing, clock
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._results: list[Result] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        # Requests on the wire at once; the rest wait for their slot and a free connection.
        self._sending = asyncio.Semaphore(CONCURRENT_SENDS)
        # The claim plans slots 1/rate apart, but tasks that wake late would go out in a burst.
        # A small bucket re-spaces them: it lets a late sender catch up by a few messages (4%
        # of the rate) and runs at 95% of it, so no one-second window exceeds the limit.
        burst = max(1, int(pacing.rate * 0.04))
        self._spacing = AsyncLimiter(burst, burst / (pacing.rate * RATE_MARGIN))
        # Notified after every write of results (tests and benchmarks wait on it).
        self.flushed = asyncio.Condition()

    def wake(self) -> None:
        """New messages were queued by this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.step()
            except Exception:
                log.exception("delivery round failed; retrying")
            await self._flush()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._flush()

    async def step(self) -> int:
        """Claim the next second of slots and start sending; wait when there is nothing."""
        async with self.sessionmaker() as session, session.begin():
            batch = await claim(session, self.channel, self.name, self.clock(), self.pacing)
        for message in batch:
            task = asyncio.create_task(self._deliver(message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
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

    async def _deliver(self, message: Claimed) -> None:
        wait = (message.slot - self.clock()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        result = Result(message)
        try:
            async with self._sending:
                await self._spacing.acquire()
                result.telegram_id = await self.send(message.chat_id, reply_of(message))
                result.done_at = self.clock()
        except RetryAfter as error:
            retry = error.retry_after
            seconds = retry.total_seconds() if isinstance(retry, dt.timedelta) else float(retry)
            result.flood_until = self.clock() + dt.timedelta(seconds=seconds)
            result.retry_at = result.flood_until
        except Forbidden as error:
            result.blocked, result.failed = True, str(error)
        except BadRequest as error:
            result.failed = str(error)  # retrying the same request would fail the same way
        except (NetworkError, TelegramError) as error:  # timeouts, 5xx, connection resets
            if message.attempts + 1 >= MAX_ATTEMPTS:
                result.failed = f"gave up after {MAX_ATTEMPTS} attempts: {error}"
            else:
                result.retry_at = self.clock() + backoff(message.attempts)
        except Exception as error:  # a bug must not lose the message: keep it for later
            log.exception("sending outbox message %s", message.id)
            result.retry_at = self.clock() + backoff(message.attempts)
            result.failed = None if message.attempts + 1 < MAX_ATTEMPTS else repr(error)
        self._results.append(result)
        # Write results in batches, and at once when this was the last message in flight.
        if len(self._results) >= 200 or len(self._in_flight) <= 1:
            await self._flush()

    async def _flush(self) -> None:
        results, self._results = self._results, []
        if results:
            try:
                await self._record(results)
            except Exception:
                # Keep them: forgetting would leave the messages leased, then sent twice.
                log.exception("recording %d delivery results failed; will retry", len(results))
                self._results = results + self._results
        # Every round ends here, so waiters re-check at least once per round.
        async with self.flushed:
            self.flushed.notify_all()

    async def _record(self, results: list[Result]) -> None:
        now = self.clock()
        batch = Results()
        blocked: set[str] = set()
        for result in results:
            message = result.message
            if result.telegram_id is not None:
                batch.sent.append((message.id, result.telegram_id))
                # The chat's next message is spaced from when this one really went out.
                batch.chat_sent.append((message.chat_id, result.done_at or now))
            elif result.failed is not None:
                batch.failed.append((message.id, result.failed))
                if result.blocked:
                    blocked.add(message.chat_id)
            else:
                batch.retry.append((message.id, result.retry_at or now))
        flood = max((r.flood_until for r in results if r.flood_until), default=None)
        async with self.sessionmaker() as session, session.begin():
            await record(session, self.channel, batch, now, self.pacing)
            for chat_id in blocked:
                await mark_unreachable(session, self.channel, chat_id, now)
            if flood is not None:
                await delay_channel(session, self.channel, flood)
        if batch.retry:
            self.wake()


def telegram_sender(bot: Bot) -> Send:
    """Sends one outbox reply with a bot that has no rate limiter of its own (we pace)."""

    async def send(chat_id: str, reply: Reply) -> str:
        if reply.document is not None:
            message = await bot.send_document(
                int(chat_id),
                document=reply.document.content,
                filename=reply.document.file_name,
                caption=reply.text[: MessageLimit.CAPTION_LENGTH] or None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup(reply),
            )
            return str(message.message_id)
        # Notifications are short; a long one is cut at line ends like any reply.
        *first, last = split_message(reply.text, MessageLimit.MAX_TEXT_LENGTH)
        for chunk in first:
            await bot.send_message(int(chat_id), chunk, parse_mode=ParseMode.HTML)
        message = await bot.send_message(
            int(chat_id), last, parse_mode=ParseMode.HTML, reply_markup=markup(reply)
        )
        return str(message.message_id)

    return send
