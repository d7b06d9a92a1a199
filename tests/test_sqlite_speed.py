"""Contract of models/sqlite_speed.py with aiosqlite: `InlineConnection` overrides private parts
of aiosqlite.Connection, so these tests name each part it relies on and fail, saying which,
when an aiosqlite upgrade changes it (then the override must be revisited, or dropped)."""

from __future__ import annotations

import datetime as dt
import inspect
import sqlite3
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosqlite
import pytest
from hypothesis import example, given
from hypothesis.strategies import datetimes, just, timezones
from sqlalchemy.dialects import sqlite

from models.base import UTCDateTime
from models.sqlite_speed import InlineConnection, inline_connector


def test_the_private_parts_it_overrides_are_still_there() -> None:
    execute = getattr(aiosqlite.Connection, "_execute", None)
    assert execute is not None, "aiosqlite.Connection._execute is gone"
    assert inspect.iscoroutinefunction(execute), "aiosqlite.Connection._execute is not async"
    parameters = list(inspect.signature(execute).parameters.values())
    assert [p.name for p in parameters[:2]] == ["self", "fn"], parameters
    kinds = {p.kind for p in parameters[2:]}
    assert kinds == {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}, parameters
    init = inspect.signature(aiosqlite.Connection.__init__).parameters
    assert {"connector", "iter_chunk_size"} <= set(init), f"Connection.__init__{list(init)}"


def test_a_new_connection_has_the_attributes_it_reads() -> None:
    connection = InlineConnection(lambda: sqlite3.connect(":memory:"), iter_chunk_size=64)
    for name in ("_running", "_connection", "_thread"):
        assert hasattr(connection, name), f"aiosqlite.Connection no longer sets {name}"
    assert isinstance(connection._thread, threading.Thread)
    assert connection._connection is None  # opened by the worker thread, on await


async def test_statements_run_in_the_loops_thread_and_none_once_closed(tmp_path: Path) -> None:
    """The point of the override, observed: SQLite calls back in the event loop's thread (were
    aiosqlite to stop routing statements through `_execute`, it would be its worker's)."""
    connection = await inline_connector(str(tmp_path / "speed.db"))()
    try:
        await connection.create_function("thread_id", 0, threading.get_ident)
        async with connection.execute("SELECT thread_id()") as cursor:
            row = await cursor.fetchone()
        assert row is not None and row[0] == threading.get_ident()
        assert connection._thread.daemon  # a forgotten connection does not hold the exit
    finally:
        await connection.close()
    with pytest.raises(ValueError):  # not a statement run on a closed sqlite3 connection
        await connection.execute("SELECT 1")


@given(datetimes(timezones=just(dt.UTC)) | datetimes(timezones=timezones()))
@example(dt.datetime(2024, 3, 10, 2, 30, tzinfo=ZoneInfo("America/Indiana/Indianapolis")))  # a gap
def test_times_are_stored_as_the_same_text_sqlalchemy_writes(moment: dt.datetime) -> None:
    """models.base writes SQLite times with `isoformat`: the stored text must be SQLAlchemy's
    own DATETIME text, or rows written before would compare and sort wrongly against new ones."""
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = sqlite.DATETIME().bind_processor(dialect)
    assert ours is not None and theirs is not None
    assert ours(moment) == theirs(moment.astimezone(dt.UTC))
    back = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    # Compared in UTC: a local time in a DST gap never equals one in another zone (PEP 495).
    assert back is not None and back(ours(moment)) == moment.astimezone(dt.UTC)
