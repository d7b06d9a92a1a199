"""Runs the long tasks (export, import, statistics, digest preview) that events queued, after
their batch and outside its shared transaction (handlers/tasks.py does the work).

A runner claims a task in a short write transaction (first asking a read-only session whether
there is one, so an idle bot takes no write lock every second), leases it, keeps the lease fresh
while the task runs, and queues the result to the chat through the outbox in the transaction
that marks the task done: a result is sent once, even when a task runs twice. A task that raises
is retried with back-off up to MAX_ATTEMPTS, then its user hears that it could not be finished.
A runner that dies leaves its tasks leased; when the lease runs out another run takes them over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.stopping import finish_within
from handlers import notices
from handlers.context import Services, TaskContext
from handlers.events import Notice, Reply
from handlers.i18n import _, use_language
from handlers.tasks import perform
from models import keys
from models.base import utcnow
from models.db import create_sessionmaker
from models.tasks import (
    LongTaskRow,
    claim_task,
    extend_leases,
    finish_task,
    next_due,
    retry_task,
)
from models.users import User

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
LEASE = dt.timedelta(seconds=30)  # renewed every LEASE / 3 while the task runs
POLL_SECONDS = 1.0
STOP_SECONDS = 8.0
TASK_SECONDS = 15 * 60  # a task still running after this counts as failed (and is retried)

Fetch = Callable[[str], Awaitable[bytes]]


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(300, 5 * 4 ** (attempts - 1)))  # 5 s, 20 s, 80 s…


class TaskRunner:
    """One per process. Several may share a database; the lease keeps them apart."""

    def __init__(
        self,
        engine: AsyncEngine,
        services: Services,
        *,
        fetchers: Mapping[str, Fetch],
        queued: Callable[[], None],
        concurrency: int = 2,
        clock: Callable[[], dt.datetime] = utcnow,
        poll: float = POLL_SECONDS,
    ) -> None:
        """`fetchers` download a file by its id, per channel; `queued` wakes delivery after
        messages were queued; `clock` times leases and back-off (the services' clock is the
        business date, which tests stop)."""
        self.database_url = engine.url.render_as_string(hide_password=False)
        self.writer = create_sessionmaker(engine)
        self.reader = create_sessionmaker(engine, read_only=True)
        self.services, self.fetchers, self.queued = services, fetchers, queued
        self.concurrency, self.clock, self.poll = concurrency, clock, poll
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: dict[int, asyncio.Task[None]] = {}
        self._claiming = asyncio.Lock()  # stop() waits for a claim under way
        # Notified whenever a task ends, whatever the outcome (tests wait on it).
        self.finished = asyncio.Condition()

    def wake(self) -> None:
        """Tasks were queued by this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(), name="long-task-leases")
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._start_due()
                except Exception:
                    log.exception("claiming long tasks failed; trying again")
                if self._stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
                except TimeoutError:
                    pass
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def stop(self, grace: float = STOP_SECONDS) -> None:
        """Claim nothing more; give running tasks `grace` seconds, then cancel them. A cancelled
        task stays leased and runs again once its lease runs out."""
        self._stopping = True
        self._wake.set()
        try:
            # A task claimed meanwhile is in _running now. A claim that waits for the database
            # (another process holds SQLite's lock) is not waited for: the runtime cancels it,
            # and its transaction, not committed, claims nothing.
            async with asyncio.timeout(grace):
                async with self._claiming:
                    running = list(self._running.values())
        except TimeoutError:
            running = list(self._running.values())
        if not running:
            return
        pending = await finish_within(running, grace)
        if pending:
            log.info("stopped %d long tasks; they run again when their lease ends", len(pending))

    async def _start_due(self) -> None:
        async with self._claiming:
            await self._claim_while_free()

    async def _claim_while_free(self) -> None:
        while len(self._running) < self.concurrency and not self._stopping:
            now = self.clock()
            async with self.reader() as session:
                due = await next_due(session, now)
            if due is None or due > now:
                return
            async with self.writer() as session, session.begin():
                row = await claim_task(session, worker=self.name, now=now, lease=LEASE)
                if row is None:
                    return
                user = await session.get(User, row.user_id)
                if user is None:  # nobody to run it for, or to tell
                    await finish_task(session, row.id, worker=self.name, now=now, error="no user")
                    continue
            task = asyncio.create_task(self._run_one(row, user), name=f"long-task-{row.id}")
            self._running[row.id] = task

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            if not self._running:
                continue
            try:
                async with self.writer() as session, session.begin():
                    await extend_leases(
                        session, list(self._running), worker=self.name, until=self.clock() + LEASE
                    )
            except Exception:
                log.warning("could not renew the leases of long tasks", exc_info=True)

    async def _run_one(self, row: LongTaskRow, user: User) -> None:
        """In a task of its own: the language set here stays with this task's context."""
        try:
            use_language(user.language)
            if row.attempts > MAX_ATTEMPTS:  # it stopped its runners this often (crashes)
                await self._give_up(row, user, "no attempt finished")
                return
            try:
                async with asyncio.timeout(TASK_SECONDS):
                    replies = await perform(self._context(row, user), row.kind)
            except Exception as error:
                log.warning("long task %s (%s) failed", row.id, row.kind, exc_info=True)
                await self._failed(row, user, error)
                return
            await self._finish(row, user, replies)
        except Exception:  # the database refused even the outcome: the lease runs out, rerun
            log.exception("long task %s: its outcome could not be recorded", row.id)
        finally:
            self._running.pop(row.id, None)
            self._wake.set()  # a slot is free
            async with self.finished:
                self.finished.notify_all()

    def _context(self, row: LongTaskRow, user: User) -> TaskContext:
        progress_count = 0

        async def progress(text: str) -> None:
            nonlocal progress_count
            key = keys.task_progress(row.id, progress_count)
            progress_count += 1
            try:
                await self._queue(row, user, key, [Reply(text)])
            except Exception:  # a progress message is a courtesy: the work goes on
                log.warning("long task %s: progress message not queued", row.id, exc_info=True)

        async def fetch(file_id: str) -> bytes:
            fetcher = self.fetchers.get(row.channel)
            if fetcher is None:
                raise LookupError(f"no way to fetch files of channel {row.channel!r}")
            return await fetcher(file_id)

        return TaskContext(
            task_id=row.id,
            worker=self.name,
            channel=row.channel,
            chat_id=row.chat_id,
            user=user,
            services=self.services,
            args=dict(row.args),
            reader=self.reader,
            writer=self.writer,
            progress=progress,
            fetch=fetch,
            cursor=row.cursor,
            state=row.state,
            database_url=self.database_url,
        )

    def _notice(self, row: LongTaskRow, user: User, key: str, replies: list[Reply]) -> Notice:
        return Notice(row.channel, row.chat_id, tuple(replies), key=key, user_id=user.id)

    async def _queue(self, row: LongTaskRow, user: User, key: str, replies: list[Reply]) -> None:
        async with self.writer() as session, session.begin():
            queued = await notices.queue(session, [self._notice(row, user, key, replies)], utcnow())
        if queued:
            self.queued()

    async def _finish(
        self, row: LongTaskRow, user: User, replies: list[Reply], error: str | None = None
    ) -> None:
        """Done (or failed for good): the task and its messages in one transaction."""
        async with self.writer() as session, session.begin():
            mine = await finish_task(
                session, row.id, worker=self.name, now=self.clock(), error=error
            )
            if not mine:  # another runner took it over and will finish it
                log.info("long task %s was taken over; its result is theirs to send", row.id)
                return
            notice = self._notice(row, user, keys.task_result(row.id), replies)
            queued = await notices.queue(session, [notice], utcnow())
        if queued:
            self.queued()

    async def _give_up(self, row: LongTaskRow, user: User, why: str) -> None:
        sorry = _("Sorry, this could not be finished. Please try again in a few minutes.")
        await self._finish(row, user, [Reply(sorry)], error=why)

    async def _failed(self, row: LongTaskRow, user: User, error: Exception) -> None:
        why = f"{type(error).__name__}: {error}"
        if row.attempts >= MAX_ATTEMPTS:
            await self._give_up(row, user, why)
            return
        async with self.writer() as session, session.begin():
            await retry_task(
                session,
                row.id,
                worker=self.name,
                not_before=self.clock() + backoff(row.attempts),
                error=why,
            )
