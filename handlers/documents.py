"""Officials' paperwork in the chat: digest on demand, statistics, the official export, and
the admins' import of existing certificates (with its template).

Each command checks its input and answers at once; the work itself is a long task
(handlers/tasks.py) that runs after the event's batch and sends its result when done.
"""

from __future__ import annotations

import html

from handlers import dossier
from handlers.context import Context
from handlers.events import Document, EventKind, LongTask, Outcome, Reply
from handlers.i18n import N_, _
from handlers.reports.certificate_import import MAX_FILE_BYTES
from handlers.reports.certificate_template import template_xlsx
from handlers.reports.digest import scope_codes
from handlers.routes import Call, Command, Entry, Upload
from handlers.scopes import parse_communes
from models.domain import Role, parse_number

FIRST_YEAR = 2018


def _year(ctx: Context, text: str | None) -> int | None:
    """A programme year typed by an official; the current year when none; None if nonsense."""
    if text is None:
        return ctx.today().year
    year = parse_number(text, max_digits=4)
    if year is not None and FIRST_YEAR <= year <= ctx.today().year + 1:
        return year
    return None


async def digest_now(call: Call) -> Outcome:
    """The digest as it would go out now (a preview: the scheduled one is still sent)."""
    return Outcome([Reply(_("Preparing the digest…"))], tasks=[LongTask("digest")])


async def stats(call: Call) -> Outcome:
    ctx = call.ctx
    year = _year(ctx, call.args[0] if call.args else None)
    if year is None:
        return Outcome([Reply(_("Usage: /stats [year], for example /stats 2026."))])
    return Outcome([Reply(_("Counting the figures…"))], tasks=[LongTask("stats", {"year": year})])


async def export(call: Call) -> Outcome:
    """`/export [year] [commune codes…] [csv]` — officials get only their own communes."""
    ctx, args = call.ctx, list(call.args)
    as_csv = "csv" in (arg.lower() for arg in args)
    args = [arg for arg in args if arg.lower() not in ("csv", "xlsx")]
    year = _year(ctx, args.pop(0) if args and len(args[0]) == 4 and args[0].isdigit() else None)
    allowed = scope_codes(ctx.area, ctx.user)
    # Communes by name or code ("/xuat 2026 Sa Huỳnh"); a code outside the area stays unknown.
    named, unknown = parse_communes(ctx.area, args)
    outside = [code for code in named if code not in allowed]
    if year is None or unknown or outside:
        known = [c.short_name for c in ctx.area.communes if c.code in allowed]
        text = _(
            "How to use it: /export [year] [communes, by name or code] [csv], for example "
            "/export 2026 {example}. Your communes: {names}."
        ).format(
            example=html.escape(known[0] if known else ""),
            names=html.escape(", ".join(known[:12])),
        )
        refused = "out of scope " + " ".join(outside) if outside else None
        return Outcome([Reply(text)], refused=refused)
    task = LongTask("export", {"year": year, "communes": named or allowed, "csv": as_csv})
    return Outcome([Reply(_("Preparing the table…"))], tasks=[task])


async def template(call: Call) -> Outcome:
    ctx = call.ctx
    text = _(
        "Fill in one row per certificate and send the file back here. Columns marked as "
        "required must not be empty; dates as day/month/year."
    )
    return Outcome(
        [
            Reply(
                text,
                document=Document("mau-nhap-chung-nhan-ocop.xlsx", template_xlsx(area=ctx.area)),
            )
        ]
    )


async def import_file(call: Call) -> Outcome:
    """An admin's file is an import, unless it is a photo or the admin chose a dossier item."""
    ctx, attachment = call.ctx, call.event.attachment
    if call.event.kind is EventKind.PHOTO or dossier.in_progress(call.conversation):
        return await dossier.receive(call)
    if attachment is None:
        return Outcome([Reply(_("Send the filled template as a file."))])
    if attachment.size is not None and attachment.size > MAX_FILE_BYTES:
        return Outcome([Reply(_("This file is too large (at most 5 MB)."))])
    if attachment.file_id is None:  # a channel that cannot fetch a file again later
        text = _("Files cannot be imported through this channel. Please send the file on Telegram.")
        return Outcome([Reply(text)])
    task = LongTask(
        "import",
        {
            "file_id": attachment.file_id,
            "file_name": attachment.file_name,
            "today": ctx.today().isoformat(),  # the same rows however late the task runs
        },
    )
    reading = _("Reading {name}…").format(name=html.escape(attachment.file_name))
    return Outcome([Reply(reading)], tasks=[task])


def routes() -> tuple[Entry, ...]:
    return (
        Command(
            "digest",
            digest_now,
            ("bantin",),
            role=Role.OFFICIAL,
            menu=N_("Today's digest"),
            help=N_("/digest: today's digest now"),
        ),
        Command(
            "export",
            export,
            ("xuat",),
            role=Role.OFFICIAL,
            menu=N_("The registration table (Excel)"),
            help=N_(
                "/export [year] [commune codes]: the registration table (XLSX; add csv for CSV)"
            ),
        ),
        Command(
            "stats",
            stats,
            ("thongke",),
            role=Role.OFFICIAL,
            menu=N_("Figures for the annual report"),
            help=N_("/stats [year]: cumulative figures for the annual report"),
        ),
        Command(
            "template",
            template,
            ("maunhap",),
            role=Role.ADMIN,
            menu=N_("Import existing certificates"),
            help=N_("/template, then send the filled file: import existing certificates"),
        ),
        Upload(
            import_file,
            role=Role.ADMIN,
            otherwise=dossier.receive,
            help=N_("Photos and files sent here go in your registration's dossier"),
        ),
    )
