"""The runtime: the inbox worker, the delivery workers, the receivers of every enabled channel
and the scheduled jobs (bot/jobs.py), started and stopped in one order, whichever channels are
enabled.

Start: unsent messages of a crashed SQLite bot are handed back to the queue (SQLite serves one
process, so nobody else can be sending them; on PostgreSQL their leases run out), delivery
starts, then the inbox worker (which first picks up what a previous run left), then the
receivers, then the jobs. Stop (SIGTERM): the jobs, then the receivers, so nothing new is
acknowledged; the updates in flight commit or are rolled back into the inbox; sends under way
finish or go back to the queue. Each step has its own share of the 10 seconds a service manager
allows.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.batch import Batcher
from bot.delivery import DeliveryWorker
from bot.fairness import SenderLimits
from bot.inbox import Channel, InboxWorker
from bot.jobs import Scheduler
from bot.receiving import Recorder
from bot.tasks import TaskRunner
from handlers.context import Services
from models.db import create_sessionmaker
from models.replies import release_leases

log = logging.getLogger(__name__)

INBOX_GRACE = 4.0  # seconds for updates in flight to commit when stopping
DELIVERY_GRACE = 3.0  # seconds for sends under way to finish when stopping
TASKS_GRACE = 2.0  # seconds for long tasks to finish; the others resume at the next start
JOBS_GRACE = 1.0  # seconds for a scheduled job's run to finish; its next run does the rest


def settle_process() -> None:
    """Once a serving process has started: what start-up built (modules, classes, caches) lives
    as long as the process, so it is frozen and full collections skip it (a pause of ~65 ms
    becomes ~10); most of what an update allocates dies by reference counting, so the cycle
    collector need not look at young objects every 700 allocations (+10-40% throughput,
    bench/README.md, "conversation"). Called by the CLI's `run` only, once serving, never
    by building an application, so tests and tools keep the interpreter's defaults."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


class Receiver(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    def __init__(
        self,
        engine: AsyncEngine,
        services: Services,
        limits: SenderLimits,
        *,
        batcher: Batcher | None = None,
    ) -> None:
        self.engine, self.services = engine, services
        self.sessionmaker = create_sessionmaker(engine)
        self.batcher = batcher or Batcher(self.sessionmaker)
        self.inbox = InboxWorker(
            engine, services, {}, queued=self.wake_deliveries, batcher=self.batcher
        )
        self.recorder = Recorder(engine, self.inbox, limits)
        self.fetchers: dict[str, Callable[[str], Awaitable[bytes]]] = {}
        self.tasks = TaskRunner(
            engine, services, fetchers=self.fetchers, queued=self.wake_deliveries
        )
        self.inbox.tasks_queued = self.tasks.wake
        self.deliveries: dict[str, DeliveryWorker] = {}
        self.receivers: list[Receiver] = []
        self.scheduler = Scheduler()
        self._tasks: list[asyncio.Task[None]] = []
        self._started: list[Receiver] = []

    def add_channel(self, channel: Channel, *receivers: Receiver) -> None:
        self.inbox.channels[channel.name] = channel
        self.deliveries[channel.name] = channel.delivery
        self.fetchers[channel.name] = channel.fetch
        self.receivers += receivers

    def wake_deliveries(self) -> None:
        """Messages were queued; they may be for any channel (an official on Telegram reviews
        a registration made on Zalo)."""
        for worker in self.deliveries.values():
            worker.wake()

    async def start(self) -> None:
        await self.batcher.warm_up()
        if self.engine.dialect.name == "sqlite":
            async with self.sessionmaker() as session, session.begin():
                for name in self.deliveries:
                    if released := await release_leases(session, name):
                        log.info("%d unsent %s messages from the last run queued", released, name)
        for name, worker in self.deliveries.items():
            self._tasks.append(asyncio.create_task(worker.run(), name=f"{name}-delivery"))
        self._tasks.append(asyncio.create_task(self.inbox.run(), name="inbox"))
        self._tasks.append(asyncio.create_task(self.tasks.run(), name="long-tasks"))
        for receiver in self.receivers:
            await receiver.start()
            self._started.append(receiver)
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop(JOBS_GRACE)
        for receiver in reversed(self._started):
            try:
                await receiver.stop()
            except Exception:
                log.exception("stopping a receiver failed")
        self._started.clear()
        await self.inbox.stop(INBOX_GRACE)
        await self.tasks.stop(TASKS_GRACE)
        await asyncio.gather(
            *(worker.stop(DELIVERY_GRACE) for worker in self.deliveries.values()),
            return_exceptions=True,
        )
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
