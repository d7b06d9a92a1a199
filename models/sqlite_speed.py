"""The SQLite speed measures, kept apart from the engine's plain wiring (models/db.py): a
connection whose statements run in the event loop's thread, and the process's writer lock.

`InlineConnection` overrides private parts of aiosqlite.Connection (`_execute`, `_running`,
`_connection`, `_thread`); tests/test_sqlite_speed.py fails by name when aiosqlite changes them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy.util import await_


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, except that statements run in the event loop's own thread.

    A statement on a local SQLite file takes microseconds; handing each one to aiosqlite's
    worker thread and waking the loop again costs more than that, and under load the loop takes
    a full turn of every other task before the answer is read, so a transaction of five
    statements waited five turns (bench/README.md, "conversation"). The worker thread still
    opens and closes the connection. Nothing waits long inside SQLite: write transactions queue
    on the process's writer lock (`WriterLock`) before BEGIN IMMEDIATE, another process's write
    lock is waited for in short steps (models.db `_begin_immediate`), and readers never wait
    under WAL.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def inline_connector(database: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """Connections for a plain file path (URLs with options keep aiosqlite's own thread)."""

    async def connect() -> aiosqlite.Connection:
        connection = InlineConnection(
            lambda: sqlite3.connect(database, check_same_thread=False), iter_chunk_size=64
        )
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return await connection

    return connect


class Turns:
    """A lock whose urgent waiters go before the others (FIFO within each kind)."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(),
            deque(),
        )

    async def acquire(self, urgent: bool) -> None:
        if not self._held and not any(self._waiting):
            self._held = True
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting[0 if urgent else 1].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed over just as the waiter was cancelled: pass it on
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the lock goes straight to it: still held
                    return
        self._held = False


class WriterLock:
    """One write transaction at a time per process and database file (per event loop), queued in
    asyncio rather than in SQLite's busy handler, which would block the loop that the current
    writer needs to finish. Urgent transactions (`URGENT_WRITE`) go first: delivery results,
    since a message sent but not yet marked sent is sent again if the process dies."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns] = (
            weakref.WeakKeyDictionary()
        )

    def acquire(self, info: dict[str, Any], urgent: bool = False) -> None:
        lock = self._locks.setdefault(asyncio.get_running_loop(), Turns())
        await_(lock.acquire(urgent))
        info[_WRITER] = lock

    @staticmethod
    def release(info: dict[str, Any]) -> None:
        lock = info.pop(_WRITER, None)
        if lock is not None:
            lock.release()


_WRITER = "ocop_writer_lock"
