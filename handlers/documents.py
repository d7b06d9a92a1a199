"""Officials' paperwork in the chat: digest on demand, statistics, the official export, and
the admins' import of existing certificates (with its template)."""

from __future__ import annotations

import datetime as dt
import html
import io

from handlers.context import Context
from handlers.events import Document, Outcome, Reply
from handlers.i18n import _
from handlers.officials import describe_scope
from handlers.reports.certificate_import import (
    MAX_FILE_BYTES,
    ImportFileError,
    import_certificates,
)
from handlers.reports.certificate_template import template_xlsx
from handlers.reports.digest import build_digest, render_digest, scope_codes
from handlers.reports.export import ExportFilter, write_registration_csv, write_registration_xlsx
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from handlers.routes import Call, Routes
from models.digests import last_covered
from models.domain import Role

FIRST_YEAR = 2018


def _scope_label(ctx: Context) -> str:
    user = ctx.user
    return describe_scope(ctx, None if user.role is Role.ADMIN else user.scope)


def _year(ctx: Context, text: str | None) -> int | None:
    """A programme year typed by an official; the current year when none; None if nonsense."""
    if text is None:
        return ctx.today().year
    if text.isdigit() and FIRST_YEAR <= int(text) <= ctx.today().year + 1:
        return int(text)
    return None


async def digest_now(call: Call) -> Outcome:
    """The digest as it would go out now (a preview: the scheduled one is still sent)."""
    ctx = call.ctx
    now = ctx.services.clock()
    since = await last_covered(ctx.session, ctx.user.id) or now - dt.timedelta(days=1)
    digest = await build_digest(ctx.session, ctx.area, ctx.user, since, now, ctx.services.timezone)
    return Outcome(render_digest(digest))


async def stats(call: Call) -> Outcome:
    ctx = call.ctx
    year = _year(ctx, call.args[0] if call.args else None)
    if year is None:
        return Outcome([Reply(_("Usage: /stats [year], for example /stats 2026."))])
    codes = scope_codes(ctx.area, ctx.user)
    figures = await compute_stats(ctx.session, year, codes, ctx.today())
    label = _scope_label(ctx)
    document = Document(f"so-lieu-ocop-{year}.xlsx", stats_xlsx(figures, label))
    return Outcome(
        [
            Reply(render_stats(figures, label)),
            Reply(_("The same figures as XLSX."), document=document),
        ]
    )


async def export(call: Call) -> Outcome:
    """`/export [year] [commune codes…] [csv]` — officials get only their own communes."""
    ctx, args = call.ctx, list(call.args)
    as_csv = "csv" in (arg.lower() for arg in args)
    args = [arg for arg in args if arg.lower() not in ("csv", "xlsx")]
    year = _year(ctx, args.pop(0) if args and len(args[0]) == 4 else None)
    allowed = scope_codes(ctx.area, ctx.user)
    unknown = [code for code in args if code not in allowed]
    if year is None or unknown:
        known = [f"{c.code} {c.short_name}" for c in ctx.area.communes if c.code in allowed]
        text = _("Usage: /export [year] [commune codes] [csv]. Your communes: {codes}.").format(
            codes=html.escape(", ".join(known[:12]))
        )
        return Outcome([Reply(text)])
    selection = ExportFilter(year=year, communes=tuple(args or allowed))
    await ctx.progress(_("Preparing the table…"))
    if as_csv:
        text_buffer = io.StringIO()
        count = await write_registration_csv(
            ctx.session, ctx.area, selection, text_buffer, timezone=ctx.services.timezone
        )
        content = ("\ufeff" + text_buffer.getvalue()).encode("utf-8")  # BOM: Excel reads UTF-8
        name = f"dang-ky-ocop-{year}.csv"
    else:
        buffer = io.BytesIO()
        count = await write_registration_xlsx(
            ctx.session, ctx.area, selection, buffer, timezone=ctx.services.timezone
        )
        content, name = buffer.getvalue(), f"dang-ky-ocop-{year}.xlsx"
    caption = _("Registrations of {year}: {count}.").format(year=year, count=count)
    return Outcome([Reply(caption, document=Document(name, content))])


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
    ctx, attachment = call.ctx, call.event.attachment
    if attachment is None:
        return Outcome([Reply(_("Send the filled template as a file."))])
    if attachment.size is not None and attachment.size > MAX_FILE_BYTES:
        return Outcome([Reply(_("This file is too large (at most 5 MB)."))])
    await ctx.progress(_("Reading {name}…").format(name=html.escape(attachment.file_name)))
    content = await attachment.fetch()
    try:
        result = await import_certificates(
            ctx.session, ctx.area, content, attachment.file_name, today=ctx.today()
        )
    except ImportFileError as error:
        return Outcome(
            [Reply(_("Nothing was imported: {why}").format(why=html.escape(error.message)))]
        )
    lines = [_("✅ Imported certificates: {count}.").format(count=result.imported)]
    if result.rejected:
        lines += ["", _("Rows not imported ({count}):").format(count=len(result.rejected))]
        lines += [
            _("Row {row}: {reasons}").format(
                row=row.row, reasons=html.escape("; ".join(row.reasons))
            )
            for row in result.rejected
        ]
    return Outcome([Reply("\n".join(lines))])


async def not_readable(call: Call) -> Outcome:
    return Outcome([Reply(_("I can't read files here. Please type your answer."))])


def register_routes(routes: Routes) -> None:
    routes.command("digest", digest_now, "bantin", role=Role.OFFICIAL)
    routes.command("stats", stats, "thongke", role=Role.OFFICIAL)
    routes.command("export", export, "xuat", role=Role.OFFICIAL)
    routes.command("template", template, "maunhap", role=Role.ADMIN)
    routes.document(import_file, role=Role.ADMIN, otherwise=not_readable)
