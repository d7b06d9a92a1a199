"""Engine and session factory: SQLite pragmas, IMMEDIATE write transactions, PostgreSQL as is."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

from models.sqlite_speed import WriterLock, inline_connector


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


_WRITERS: dict[str, WriterLock] = {}  # by database file: two engines on one file share one
# Another process (`ocop-bot import`, a second bot during a restart) may hold SQLite's write
# lock. Each attempt to begin waits at most BUSY_STEP inside SQLite, then the loop is free
# while we pause; after BUSY_SECONDS the event fails with "database is locked".
BUSY_STEP_MS = 50
BUSY_SECONDS = 10.0


def is_busy(error: BaseException) -> bool:
    """SQLite's "database is locked": another process kept the write lock too long."""
    message = str(getattr(error, "orig", None) or error).lower()
    return "database is locked" in message or "database is busy" in message


def is_unavailable(error: BaseException) -> bool:
    """The database could not do the work, through no fault of the work: busy (SQLite's lock
    held by another process), unreachable, or the connection lost. Trying again later helps."""
    if is_busy(error):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError)


def _begin_immediate(connection: Any) -> None:
    """BEGIN IMMEDIATE, retried with asyncio pauses while another process writes."""
    deadline = time.monotonic() + BUSY_SECONDS
    pause = 0.01
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as error:
            if not is_busy(error) or time.monotonic() + pause > deadline:
                raise
        await_(asyncio.sleep(pause))
        pause = min(pause * 2, 0.2)


_ORJSON = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _not_orjson(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is left to the standard library")


def dump_json(value: Any) -> str:
    """JSON columns as orjson writes them: the inbox's updates, the outbox's keyboards and the
    answers are encoded in every batch, and the standard library took 4% of the bot's CPU
    doing so (bench/README.md, "conversation"). Compact, UTF-8 as is. What orjson refuses
    (a lone surrogate in a text, an integer beyond 64 bits) or would write where the standard
    library refuses (dates, dataclasses) goes to the standard library, as before: an update
    orjson cannot encode must not stop the receiving of all the others."""
    try:
        return orjson.dumps(value, default=_not_orjson, option=_ORJSON).decode()
    except TypeError:
        return json.dumps(value)


def load_json(text: str | bytes) -> Any:
    """orjson's reading, and the standard library's for what only it reads (the lone
    surrogates and NaN it writes). An integer beyond 64 bits reads as a float: none is stored
    (Telegram's ids fit in 53 bits; Zalo's are strings)."""
    try:
        return orjson.loads(text)
    except ValueError:
        return json.loads(text)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Build the async engine; on SQLite every write transaction begins IMMEDIATE, after the
    process's writer lock, and statements on a file run in the loop's thread.

    A deferred transaction that reads and then writes fails at once with "database is locked"
    under WAL when another connection wrote in between; taking the write lock at BEGIN avoids it.
    """
    kwargs.setdefault("json_serializer", dump_json)
    kwargs.setdefault("json_deserializer", load_json)
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    prepare_sqlite_file(url)
    parsed = make_url(url)
    database = parsed.database or ""
    inline = bool(database) and database != ":memory:" and not parsed.query
    if inline:
        kwargs["async_creator"] = inline_connector(database)
    engine = create_async_engine(url, **kwargs)
    writer = (
        _WRITERS.setdefault(str(Path(database).resolve()), WriterLock()) if inline else WriterLock()
    )
    # Inline, SQLite may only wait briefly (the loop waits with it); the retry above does the
    # rest. In aiosqlite's thread, SQLite's own busy handler may wait the whole time.
    busy_ms = BUSY_STEP_MS if inline else int(BUSY_SECONDS * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"PRAGMA busy_timeout={busy_ms}",
            "PRAGMA journal_mode=WAL",
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
        writer.acquire(connection.info, bool(connection.get_execution_options().get(_URGENT)))
        try:
            _begin_immediate(connection)
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
_URGENT = "ocop_urgent_write"
# `await session.connection(execution_options=URGENT_WRITE)` first thing in a transaction: on
# SQLite it takes the process's write turn before any other waiting transaction.
URGENT_WRITE = {_URGENT: True}


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for events (write transactions) or, with `read_only`, for reports and checks
    that only read: on SQLite those begin DEFERRED and never wait for the write lock."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)
