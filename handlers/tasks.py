"""The work behind /digest, /stats, /export and the certificate import, as long tasks.

The commands (handlers/documents.py) check their input and answer at once; the work runs after
the event's batch (bot/tasks.py), each kind here in sessions of its own: the reports only read
(on SQLite a reader never takes the write lock; the export and the digest are built in a worker
process, see reports/offloaded.py), the import writes in short transactions. What a task
returns is sent to the chat through the outbox. The role is checked again when a task runs:
someone may have lost it since.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from handlers.context import TaskContext
from handlers.dossier_tasks import run_cover, run_form, run_purge, run_receive, run_zip
from handlers.events import Document, Reply
from handlers.i18n import N_, _
from handlers.imports import run_import
from handlers.officials import describe_scope
from handlers.reports.digest import scope_codes
from handlers.reports.export import ExportFilter
from handlers.reports.offloaded import (
    DIGEST_SECONDS,
    EXPORT_SECONDS,
    build_digest_preview,
    build_export,
    digest_preview,
    offload,
    write_export,
)
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from handlers.routes import RANK, refusal
from models.audit import record
from models.domain import Role

Run = Callable[[TaskContext], Awaitable[list[Reply]]]
NOTHING_TO_EXPORT = N_(
    "No registrations for {year} in your communes yet, so there is no table to send. "
    "Registrations appear here as soon as producers submit them."
)


@dataclass(frozen=True)
class Kind:
    run: Run
    role: Role  # the least role that may still have it done when it runs


def _scope_label(ctx: TaskContext) -> str:
    user = ctx.user
    return describe_scope(ctx, None if user.role is Role.ADMIN else user.scope)


async def run_digest(ctx: TaskContext) -> list[Reply]:
    """The digest as it would go out now (a preview: the scheduled one is still sent)."""
    now, timezone = ctx.services.clock(), ctx.services.timezone
    return await offload(
        ctx.database_url,
        ctx.reader,
        build_digest_preview,
        ctx.area,
        ctx.user.id,
        now,
        timezone.key,
        ctx.services.checklist_path,
        seconds=DIGEST_SECONDS,
        here=lambda session: digest_preview(
            session, ctx.area, ctx.user.id, now, timezone, ctx.services.checklist_path
        ),
    )


async def run_stats(ctx: TaskContext) -> list[Reply]:
    """args: year."""
    year = int(ctx.args["year"])
    codes = scope_codes(ctx.area, ctx.user)
    async with ctx.reader() as session:
        figures = await compute_stats(session, year, codes, ctx.today(), ctx.area)
    label = _scope_label(ctx)
    document = Document(f"so-lieu-ocop-{year}.xlsx", stats_xlsx(figures, label))
    return [
        Reply(render_stats(figures, label)),
        Reply(_("The same figures as XLSX."), document=document),
    ]


async def run_export(ctx: TaskContext) -> list[Reply]:
    """args: year, communes (codes checked by the command), csv."""
    year, as_csv = int(ctx.args["year"]), bool(ctx.args.get("csv"))
    allowed = set(scope_codes(ctx.area, ctx.user))  # the official's communes as they are now
    communes = tuple(code for code in ctx.args["communes"] if code in allowed)
    selection = ExportFilter(
        year=year,
        communes=communes,
        checklist_path=ctx.services.checklist_path,
        channels=ctx.services.channels,
    )
    timezone, letterhead, today = ctx.services.timezone, ctx.services.letterhead, ctx.today()
    count, content = await offload(
        ctx.database_url,
        ctx.reader,
        build_export,
        ctx.area,
        selection,
        as_csv,
        timezone.key,
        letterhead,
        today,
        seconds=EXPORT_SECONDS,
        here=lambda session: write_export(
            session, ctx.area, selection, as_csv, timezone, letterhead, today
        ),
    )
    async with ctx.writer() as session, session.begin():  # what left, for whom, how much
        scope = " ".join(communes)
        record(session, ctx.user, "export", f"{year} communes {scope}: {count} rows", True)
    if count == 0:  # an empty table is no document: say so instead
        return [Reply(_(NOTHING_TO_EXPORT).format(year=year))]
    name = f"dang-ky-ocop-{year}.{'csv' if as_csv else 'xlsx'}"
    caption = _("Registrations of {year}: {count}.").format(year=year, count=count)
    return [Reply(caption, document=Document(name, content))]


TASKS: dict[str, Kind] = {
    "digest": Kind(run_digest, Role.OFFICIAL),
    "stats": Kind(run_stats, Role.OFFICIAL),
    "export": Kind(run_export, Role.OFFICIAL),
    "import": Kind(run_import, Role.ADMIN),
    # The dossier (handlers/dossier_tasks.py): each checks whose registration it is.
    "dossier_file": Kind(run_receive, Role.PRODUCER),
    "dossier_form": Kind(run_form, Role.PRODUCER),
    "dossier_purge": Kind(run_purge, Role.PRODUCER),
    "dossier_zip": Kind(run_zip, Role.OFFICIAL),
    "dossier_cover": Kind(run_cover, Role.OFFICIAL),
}


async def perform(ctx: TaskContext, kind: str) -> list[Reply]:
    """Run a task of `kind` for its user; raises LookupError for a kind nobody registered."""
    entry = TASKS.get(kind)
    if entry is None:
        raise LookupError(f"no long task of kind {kind!r}")
    if RANK[ctx.user.role] < RANK[entry.role]:
        return [refusal(entry.role)]
    return await entry.run(ctx)
