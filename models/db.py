"""Engine and session factory: SQLite pragmas, IMMEDIATE write transactions, PostgreSQL as is."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


class _InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection, except that statements run in the event loop's own thread.

    A statement on a local SQLite file takes microseconds; handing each one to aiosqlite's
    worker thread and waking the loop again costs more than that, and under load the loop takes
    a full turn of every other task before the answer is read, so a transaction of five
    statements waited five turns (bench/README.md, "conversation"). The worker thread still
    opens and closes the connection. Nothing waits inside SQLite: write transactions queue on
    the process's writer lock below before BEGIN IMMEDIATE, and readers never wait under WAL.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def _inline_connector(database: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    async def connect() -> aiosqlite.Connection:
        connection = _InlineConnection(
            lambda: sqlite3.connect(database, check_same_thread=False), iter_chunk_size=64
        )
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return await connection

    return connect


class _WriterLock:
    """One write transaction at a time per process (and per event loop), queued in asyncio.

    SQLite allows one writer; without this, a second connection's BEGIN IMMEDIATE would sleep
    in SQLite's busy handler, blocking the loop that the first writer needs to finish."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def acquire(self, info: dict[str, Any]) -> None:
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        await_(lock.acquire())
        info[_WRITER] = lock

    @staticmethod
    def release(info: dict[str, Any]) -> None:
        lock = info.pop(_WRITER, None)
        if lock is not None:
            lock.release()


_WRITER = "ocop_writer_lock"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Build the async engine; on SQLite every write transaction begins IMMEDIATE, after the
    process's writer lock, and statements run in the loop's thread (`_InlineConnection`).

    A deferred transaction that reads and then writes fails at once with "database is locked"
    under WAL when another connection wrote in between; taking the write lock at BEGIN avoids it.
    """
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    prepare_sqlite_file(url)
    database = make_url(url).database or ":memory:"
    engine = create_async_engine(url, async_creator=_inline_connector(database), **kwargs)
    writer = _WriterLock()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA busy_timeout=10000",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")  # a reader must not queue behind writers
            return
        writer.acquire(connection.info)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writer.release(connection.info)
            raise

    # The COMMIT or ROLLBACK itself runs right after these, before the loop turns again, so
    # the next writer (woken by the release) can only begin once it is done.
    for name in ("commit", "rollback"):
        event.listen(engine.sync_engine, name, lambda connection: writer.release(connection.info))
    # Belt and braces: a connection that goes back to the pool or is thrown away holds nothing.
    for name in ("checkin", "invalidate", "close"):
        event.listen(
            engine.sync_engine.pool, name, lambda _c, record, *_: writer.release(record.info)
        )

    return engine


READ_ONLY = "ocop_read_only"


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for events (write transactions) or, with `read_only`, for reports and checks
    that only read: on SQLite those begin DEFERRED and never wait for the write lock."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)
