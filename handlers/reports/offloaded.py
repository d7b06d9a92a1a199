"""Reports built in a worker process (worker.py), each reading through a connection of its own:
the export's file and the digest preview, which for a large area are seconds of CPU the event
loop, serving every chat, cannot spare (20,000 registrations: 3.3 s of the loop for the XLSX).

A database only this process can see (SQLite in memory) is read here instead, through `here`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.checklist import load_checklist
from handlers.context import Letterhead
from handlers.events import Reply
from handlers.reports.digest import build_digest, render_digest
from handlers.reports.export import ExportFilter, write_registration_csv, write_registration_xlsx
from handlers.reports.worker import run_in_worker
from models.admin_units import Area
from models.db import create_engine, create_sessionmaker
from models.digests import last_covered
from models.users import User

T = TypeVar("T")
EXPORT_SECONDS = 600.0  # the national bench exports 95,000 rows in about 30 s (bench/results.md)
DIGEST_SECONDS = 120.0  # the whole country's digest takes about 2 s (bench/results.md)


def _seen_by_other_processes(database_url: str) -> bool:
    url = make_url(database_url) if database_url else None
    if url is None or url.get_backend_name() != "sqlite":
        return url is not None
    return url.database not in (None, "", ":memory:") and "memory" not in str(url.query)


def _reading(database_url: str, build: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """In the worker: `build` with a read-only session of a new engine."""

    async def run() -> T:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine, read_only=True)() as session:
                return await build(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def offload(
    database_url: str,
    reader: async_sessionmaker[AsyncSession],
    function: Callable[..., T],
    *args: Any,
    seconds: float,
    here: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """`function(database_url, *args)` in a worker process, or `here` with one of `reader`'s
    sessions when no other process can open the database."""
    if _seen_by_other_processes(database_url):
        result: T = await run_in_worker(function, database_url, *args, seconds=seconds)
        return result
    async with reader() as session:
        return await here(session)


async def write_export(
    session: AsyncSession,
    area: Area,
    selection: ExportFilter,
    as_csv: bool,
    timezone: ZoneInfo,
    letterhead: Letterhead,
    today: dt.date,
) -> tuple[int, bytes]:
    """The export as a file's content, with the number of registrations in it."""
    if as_csv:
        text = io.StringIO()
        count = await write_registration_csv(session, area, selection, text, timezone=timezone)
        return count, ("\ufeff" + text.getvalue()).encode("utf-8")  # BOM: Excel reads UTF-8
    buffer = io.BytesIO()
    count = await write_registration_xlsx(
        session, area, selection, buffer, timezone=timezone, letterhead=letterhead, today=today
    )
    return count, buffer.getvalue()


def build_export(
    database_url: str,
    area: Area,
    selection: ExportFilter,
    as_csv: bool,
    timezone: str,
    letterhead: Letterhead,
    today: dt.date,
) -> tuple[int, bytes]:
    zone = ZoneInfo(timezone)
    return _reading(
        database_url,
        lambda s: write_export(s, area, selection, as_csv, zone, letterhead, today),
    )


async def digest_preview(
    session: AsyncSession,
    area: Area,
    user_id: int,
    now: dt.datetime,
    timezone: ZoneInfo,
    checklist_path: str = "",
) -> list[Reply]:
    """The official's digest as it would go out now, in the current language."""
    official = await session.get(User, user_id)
    if official is None:
        return []
    since = await last_covered(session, official.id) or now - dt.timedelta(days=1)
    checklist = load_checklist(checklist_path)
    digest = await build_digest(session, area, official, since, now, timezone, checklist)
    return render_digest(digest)


def build_digest_preview(
    database_url: str,
    area: Area,
    user_id: int,
    now: dt.datetime,
    timezone: str,
    checklist_path: str = "",
) -> list[Reply]:
    zone = ZoneInfo(timezone)
    return _reading(
        database_url, lambda s: digest_preview(s, area, user_id, now, zone, checklist_path)
    )
