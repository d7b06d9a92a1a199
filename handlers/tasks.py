"""The work behind /digest, /stats, /export and the certificate import, as long tasks.

The commands (handlers/documents.py) check their input and answer at once; the work runs after
the event's batch (bot/tasks.py), each kind here in sessions of its own: the reports only read
(on SQLite a reader never takes the write lock), the import writes in short transactions. What a
task returns is sent to the chat through the outbox. The role is checked again when a task runs:
someone may have lost it since.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.context import TaskContext
from handlers.events import Document, Reply
from handlers.i18n import _
from handlers.imports import run_import
from handlers.officials import describe_scope
from handlers.reports.digest import build_digest, render_digest, scope_codes
from handlers.reports.export import ExportFilter, write_registration_csv, write_registration_xlsx
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from handlers.reports.worker import run_in_worker
from handlers.routes import RANK, refusal
from models.admin_units import Area
from models.db import create_engine, create_sessionmaker
from models.digests import last_covered
from models.domain import Role

Run = Callable[[TaskContext], Awaitable[list[Reply]]]
EXPORT_SECONDS = 600.0  # the national bench exports 95,000 rows in about 30 s (bench/results.md)


@dataclass(frozen=True)
class Kind:
    run: Run
    role: Role  # the least role that may still have it done when it runs


def _scope_label(ctx: TaskContext) -> str:
    user = ctx.user
    return describe_scope(ctx, None if user.role is Role.ADMIN else user.scope)


async def run_digest(ctx: TaskContext) -> list[Reply]:
    """The digest as it would go out now (a preview: the scheduled one is still sent)."""
    now = ctx.services.clock()
    async with ctx.reader() as session:
        since = await last_covered(session, ctx.user.id) or now - dt.timedelta(days=1)
        digest = await build_digest(session, ctx.area, ctx.user, since, now, ctx.services.timezone)
    return render_digest(digest)


async def run_stats(ctx: TaskContext) -> list[Reply]:
    """args: year."""
    year = int(ctx.args["year"])
    codes = scope_codes(ctx.area, ctx.user)
    async with ctx.reader() as session:
        figures = await compute_stats(session, year, codes, ctx.today())
    label = _scope_label(ctx)
    document = Document(f"so-lieu-ocop-{year}.xlsx", stats_xlsx(figures, label))
    return [
        Reply(render_stats(figures, label)),
        Reply(_("The same figures as XLSX."), document=document),
    ]


def build_export(
    database_url: str, area: Area, selection: ExportFilter, as_csv: bool, timezone: str
) -> tuple[int, bytes]:
    """The export file's content and row count, read through a connection of its own: run in a
    worker process (building 20,000 rows is seconds of CPU the event loop cannot spare)."""

    async def build() -> tuple[int, bytes]:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine, read_only=True)() as session:
                return await _write_export(session, area, selection, as_csv, ZoneInfo(timezone))
        finally:
            await engine.dispose()

    return asyncio.run(build())


async def _write_export(
    session: AsyncSession, area: Area, selection: ExportFilter, as_csv: bool, timezone: ZoneInfo
) -> tuple[int, bytes]:
    if as_csv:
        text = io.StringIO()
        count = await write_registration_csv(session, area, selection, text, timezone=timezone)
        return count, ("\ufeff" + text.getvalue()).encode("utf-8")  # BOM: Excel reads UTF-8
    buffer = io.BytesIO()
    count = await write_registration_xlsx(session, area, selection, buffer, timezone=timezone)
    return count, buffer.getvalue()


def _seen_by_other_processes(database_url: str) -> bool:
    url = make_url(database_url) if database_url else None
    if url is None or url.get_backend_name() != "sqlite":
        return url is not None
    return url.database not in (None, "", ":memory:") and "memory" not in str(url.query)


async def run_export(ctx: TaskContext) -> list[Reply]:
    """args: year, communes (codes checked by the command), csv."""
    year, as_csv = int(ctx.args["year"]), bool(ctx.args.get("csv"))
    allowed = set(scope_codes(ctx.area, ctx.user))  # the official's communes as they are now
    communes = tuple(code for code in ctx.args["communes"] if code in allowed)
    selection = ExportFilter(year=year, communes=communes)
    timezone = ctx.services.timezone
    if _seen_by_other_processes(ctx.database_url):
        count, content = await run_in_worker(
            build_export,
            ctx.database_url,
            ctx.area,
            selection,
            as_csv,
            timezone.key,
            seconds=EXPORT_SECONDS,
        )
    else:  # a database in this process's memory
        async with ctx.reader() as session:
            count, content = await _write_export(session, ctx.area, selection, as_csv, timezone)
    name = f"dang-ky-ocop-{year}.{'csv' if as_csv else 'xlsx'}"
    caption = _("Registrations of {year}: {count}.").format(year=year, count=count)
    return [Reply(caption, document=Document(name, content))]


TASKS: dict[str, Kind] = {
    "digest": Kind(run_digest, Role.OFFICIAL),
    "stats": Kind(run_stats, Role.OFFICIAL),
    "export": Kind(run_export, Role.OFFICIAL),
    "import": Kind(run_import, Role.ADMIN),
}


async def perform(ctx: TaskContext, kind: str) -> list[Reply]:
    """Run a task of `kind` for its user; raises LookupError for a kind nobody registered."""
    entry = TASKS.get(kind)
    if entry is None:
        raise LookupError(f"no long task of kind {kind!r}")
    if RANK[ctx.user.role] < RANK[entry.role]:
        return [refusal(entry.role)]
    return await entry.run(ctx)
