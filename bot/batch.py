"""Group commit: the events that arrive together are handled in one transaction.

Each event is still committed before its reply is sent (the callers await `run`, which returns
only after the COMMIT), but a batch of N concurrent events costs one BEGIN, one COMMIT and a few
statements that load every sender, claim every update id and load every conversation at once
(`handlers.router.prepare`), instead of a handful of round trips per event.

While a batch is in the database, the next one gathers: no timer, the batch is simply whatever
arrived meanwhile (at most `limit` events, never two from the same chat or sender, so each chat's
events stay in order). SQLite has one writer, so one batch runs at a time; on PostgreSQL up to
`parallel` batches run at once while a backlog waits, so one batch's round trips overlap
another's work.

If an event fails (its work, or the flush of what it wrote), the batch is rolled back and each of
its events runs again in a transaction of its own, so one bad event costs the others nothing but
time; the bad one's error goes to its own caller. A failure of the batch as a whole (the database
kept busy by another process, or COMMIT itself, whose outcome is then unknown) goes to every
caller: running the events again could apply one twice.

An event taken from the inbox (`inbox_id`) is handled only on its turn: the batch locks its
chats (PostgreSQL; SQLite serves one process) and deletes the event's inbox row in the same
transaction as its effect. An event whose row is gone (another process handled it) or that has
an older one of its chat before it gets `NOT_ITS_TURN` and nothing is done for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.events import Event, EventKind
from handlers.router import Prepared, conclude, prepare
from models.db import is_busy
from models.inbox import lock_chats, take_turns

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncSession, Prepared], Awaitable[T]]
# Called with the results of a batch's events, in the batch's transaction, before it commits.
Finish = Callable[[AsyncSession, list[Any]], Awaitable[None]]


class _NotItsTurn:
    def __repr__(self) -> str:
        return "NOT_ITS_TURN"


NOT_ITS_TURN: Any = _NotItsTurn()


@dataclass
class _Item(Generic[T]):
    event: Event
    work: Work[T]
    inbox_id: int | None = None
    result: asyncio.Future[T] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def keys(self) -> tuple[tuple[str, str, str], ...]:
        return (
            (self.event.channel, "chat", self.event.chat_id),
            (self.event.channel, "user", self.event.user_id),
        )


class Batcher:
    """One per process and database; every channel's events go through it."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        parallel: int | None = None,
        limit: int = 200,
        backlog: int = 50,
        finish: Finish | None = None,
    ) -> None:
        """Up to `parallel` batches at once: by default one on SQLite (one writer), two on
        PostgreSQL (so that one batch's round trips overlap another's work), the extra one only
        while more than `backlog` events wait. Four took 3-5% more CPU per update than two, for
        smaller batches, and had a p99 half as long again (bench/README.md, "conversation")."""
        self.sessionmaker = sessionmaker
        if parallel is None:
            bind = sessionmaker.kw["bind"]
            parallel = 1 if bind.dialect.name == "sqlite" else 2
        self.parallel, self.limit, self.backlog = parallel, limit, backlog
        self.finish = finish
        self._waiting: deque[_Item[Any]] = deque()
        self._runners: set[asyncio.Task[None]] = set()
        self._busy: set[tuple[str, str, str]] = set()  # chats and senders of running batches

    async def warm_up(self) -> None:
        """Before the first event: open the connections the batches will use and run a batch's
        own statements on each in a transaction that is rolled back, so that neither a new
        connection (~50-70 ms on PostgreSQL) nor a first compile or type lookup is paid by the
        first producers after a start (bench/README.md, "conversation")."""

        async def rehearse(number: int) -> None:
            name = f"warm-up-{number}"  # a sender and chat no channel has; never committed
            async with self.sessionmaker() as session:
                await prepare(session, [Event("warm-up", name, name, EventKind.OTHER, name)])
                await session.flush()
                await session.rollback()

        await asyncio.gather(*(rehearse(number) for number in range(self.parallel)))

    async def run(self, event: Event, work: Work[T], inbox_id: int | None = None) -> T:
        """Run `work` for `event` in a transaction shared with the events that arrive with it;
        returns its result once that transaction is committed (`NOT_ITS_TURN` for an inbox
        event that was not to be handled now)."""
        item: _Item[T] = _Item(event, work, inbox_id)
        self._waiting.append(item)
        # A second batch at once only under load: when little is waiting, the events that come
        # in while one batch is in the database are cheaper (and sooner) served together next.
        if not self._runners or (
            len(self._runners) < self.parallel and len(self._waiting) > self.backlog
        ):
            runner = asyncio.create_task(self._drain(), name="event-batches")
            self._runners.add(runner)
        return await item.result

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the events that are ready join the first batch
            while batch := self._take():
                keys = {key for item in batch for key in item.keys}
                self._busy |= keys
                try:
                    await self._commit(batch)
                except Exception:  # already handed to the batch's callers
                    log.debug("batch failed", exc_info=True)
                finally:
                    self._busy -= keys
        except asyncio.CancelledError as error:  # shutting down: nobody is left to run these
            _settle_all(list(self._waiting), error)
            self._waiting.clear()
            raise
        finally:
            # At once, not in a done callback: an event queued after the last `_take` must
            # find this runner gone and start another.
            self._runners.discard(asyncio.current_task())

    def _take(self) -> list[_Item[Any]]:
        """The oldest waiting events, at most one per chat and per sender."""
        batch: list[_Item[Any]] = []
        taken = set(self._busy)
        later: list[_Item[Any]] = []
        while self._waiting and len(batch) < self.limit:
            item = self._waiting.popleft()
            if item.result.done():  # its caller gave up (cancelled)
                continue
            if taken.isdisjoint(item.keys):
                batch.append(item)
            else:
                later.append(item)
            # A later event of the same chat must not overtake the one deferred before it.
            taken.update(item.keys)
        self._waiting.extendleft(reversed(later))
        return batch

    async def _commit(self, batch: list[_Item[Any]]) -> None:
        """One transaction for the batch. What one event caused (its work, or the flush of what
        it wrote) rolls the batch back and every event runs again alone; what concerns the batch
        as a whole (the database is busy, or COMMIT itself failed, when the outcome is unknown and
        a second run could apply an event twice) goes to every caller."""
        if not batch:
            return
        failure: Exception | None = None
        async with self.sessionmaker() as session:
            try:
                await session.begin()
                turns = await self._turns(session, batch)
                due = [item for item in batch if item.inbox_id is None or item.inbox_id in turns]
                done: dict[int, Any] = {}
                if due:
                    prepared = await prepare(session, [item.event for item in due])
                    done = {id(item): await item.work(session, prepared) for item in due}
                    await conclude(session, prepared)
                results = [done.get(id(item), NOT_ITS_TURN) for item in batch]
                if self.finish is not None and done:
                    await self.finish(session, list(done.values()))
                await session.flush()
            except asyncio.CancelledError as error:  # shutting down: nothing was committed
                _settle_all(batch, error)
                raise
            except Exception as error:  # rolled back as the session closes
                failure = error
            else:
                try:
                    await session.commit()
                except BaseException as error:
                    _settle_all(batch, error)
                    raise
        if failure is None:
            for item, result in zip(batch, results, strict=True):
                _settle(item, result=result)
        elif len(batch) == 1 or is_busy(failure):
            _settle_all(batch, failure)
        else:
            log.info("a batch of %d events failed; running each alone", len(batch))
            await self._one_by_one(batch)

    @staticmethod
    async def _turns(session: AsyncSession, batch: list[_Item[Any]]) -> set[int]:
        ids = [item.inbox_id for item in batch if item.inbox_id is not None]
        if not ids:
            return set()
        await lock_chats(session, [(item.event.channel, item.event.chat_id) for item in batch])
        return await take_turns(session, ids)

    async def _one_by_one(self, batch: list[_Item[Any]]) -> None:
        for index, item in enumerate(batch):
            try:
                await self._commit([item])
            except BaseException as error:
                _settle_all(batch[index:], error)
                raise


def _settle_all(batch: list[_Item[Any]], error: BaseException) -> None:
    for item in batch:
        _settle(item, error=error)


def _settle(item: _Item[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if item.result.done():
        return
    if error is not None:
        item.result.set_exception(error)
    else:
        item.result.set_result(result)
