"""The dossier's long tasks: taking a file in (download, checks, store, record), an official's
ZIP of one registration's dossier, removing contents nobody refers to, the form to sign; and
the housekeeping job's sweep of contents a crash left in the store without their row.

Each runs after the event's batch (bot/tasks.py) with no transaction open while it downloads or
talks to the store; the writes are short transactions of their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import logging
import re
import zipfile

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers import dossier
from handlers.checklist import load_checklist
from handlers.context import Context, TaskContext
from handlers.dossier_form import cover_letter, registration_form
from handlers.events import Document, FileTooLarge, Reply
from handlers.i18n import _
from handlers.reports.digest import scope_codes
from handlers.routes import refusal
from models.audit import record
from models.domain import RegistrationStatus, Role
from models.dossier import (
    EXTENSIONS,
    DossierFile,
    add_file,
    files_of,
    present_items,
    sniff,
    total_size,
    unreferenced,
)
from models.officials import in_scope
from models.registrations import Registration, hold_for_files, registrations_in
from models.storage import Storage

log = logging.getLogger(__name__)
# One ZIP a message: Telegram lets a bot send files of at most 50 MB; some room for the archive.
ZIP_PART_BYTES = 45 * 1024 * 1024
# Content stored longer ago than this with no row is an orphan; an upload takes seconds from
# storing its content to committing its row, so one in flight is never taken for one.
ORPHAN_GRACE = dt.timedelta(hours=1)
SWEEP_CHUNK = 500


def _as_context(ctx: TaskContext, session: object) -> Context:
    return Context(session, ctx.user, ctx.services)  # type: ignore[arg-type]


async def run_receive(ctx: TaskContext) -> list[Reply]:
    """args: registration, item, file_id, file_name, size."""
    registration_id, item = int(ctx.args["registration"]), str(ctx.args["item"])
    refused = dossier.refuse_size(ctx.args.get("size"))
    if refused is not None:
        return [Reply(refused)]
    try:
        content = await ctx.fetch(str(ctx.args["file_id"]))
    except FileTooLarge:
        return [Reply(dossier.refuse_size(dossier.DOWNLOAD_LIMIT + 1) or "")]
    except Exception:  # too big for getFile, gone, the network: the producer can send it again
        log.warning("dossier file of registration %s could not be downloaded", registration_id)
        return [Reply(_("I could not download this file. Please send it again."))]
    refused = dossier.refuse_size(len(content))
    if refused is not None:
        return [Reply(refused)]
    content_type = sniff(content)
    if content_type is None:
        text = _(
            "This file was not saved: only photos and scans as JPEG, PNG, PDF, DOCX or XLSX "
            "can go in the dossier (the file's content was checked, not its name)."
        )
        return [Reply(text)]
    digest = hashlib.sha256(content).hexdigest()
    limit = ctx.services.dossier_max_bytes
    async with ctx.reader() as session:
        registration = await session.get(Registration, registration_id)
        if registration is None or registration.submitted_by_user_id != ctx.user.id:
            return [Reply(_("This registration does not exist."))]
        held = await _held_if_over(session, registration_id, digest, len(content), limit)
    if held is not None:  # refused before anything is stored
        return [Reply(_too_much(registration, limit, held))]
    await ctx.services.storage.put(digest, content)  # before the row: a row always has content
    checklist = load_checklist(ctx.services.checklist_path)
    known_item = checklist.item(item)
    label = html.escape(known_item.label() if known_item else item)
    name = _file_name(str(ctx.args.get("file_name") or "file"), content_type)
    async with ctx.writer() as session, session.begin():
        # Checked again under the lock: two files sent at once both passed the check above,
        # and only one may fit.
        await hold_for_files(session, registration_id)
        held = await _held_if_over(session, registration_id, digest, len(content), limit)
        if held is None:
            added = await add_file(
                session,
                registration_id=registration_id,
                item=item,
                digest=digest,
                size=len(content),
                content_type=content_type,
                file_name=name,
                user_id=ctx.user.id,
            )
            if added:
                notice = _("✅ Saved {name} for «{item}».").format(
                    name=html.escape(name), item=label
                )
            else:
                notice = _("This file is already in «{item}»; it was not saved twice.").format(
                    item=label
                )
            reply = await dossier.checklist_reply(_as_context(ctx, session), registration, notice)
    if held is not None:
        await _purge(ctx, [digest])  # stored for nothing: no row refers to it
        return [Reply(_too_much(registration, limit, held))]
    if not await ctx.services.storage.exists(digest):
        # The orphan sweep (sweep_orphans) took an old copy of this very content between
        # our put and our commit: the row now refers to it, so it is stored again.
        await ctx.services.storage.put(digest, content)
    return [reply]


async def _held_if_over(
    session: AsyncSession, registration_id: int, digest: str, size: int, limit: int
) -> int | None:
    """The bytes a registration holds when a new file of `size` would take it past `limit`;
    None when the file fits (or its content is in the dossier already, so costs nothing)."""
    known = {row.digest for row in await files_of(session, registration_id)}
    held = await total_size(session, registration_id)
    return held if digest not in known and held + size > limit else None


def _too_much(registration: Registration, limit: int, held: int) -> str:
    return _(
        "This file was not saved: the dossier of {code} may hold at most {limit} MB "
        "and has {held} MB already. Remove a file you do not need, or send smaller scans."
    ).format(code=registration.code, limit=limit // 2**20, held=round(held / 2**20, 1))


def _file_name(name: str, content_type: str) -> str:
    """The sender's name, with the extension its content really has."""
    stem = re.sub(r"[^\w\-. ]+", "_", name.rsplit("/", 1)[-1]).strip(" .") or "file"
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem[:80]}.{EXTENSIONS[content_type]}"


async def run_zip(ctx: TaskContext) -> list[Reply]:
    """args: registration. An official's download of one registration's whole dossier."""
    async with ctx.reader() as session:
        registration = await session.get(Registration, int(ctx.args["registration"]))
        if registration is None:
            return [Reply(_("This registration does not exist."))]
        if not in_scope(ctx.user, registration.commune_code):
            return [refusal(Role.OFFICIAL)]
        rows = await files_of(session, registration.id)
    if not rows:
        return [Reply(_("{code} has no papers yet.").format(code=registration.code))]
    checklist = load_checklist(ctx.services.checklist_path)
    order = {item.key: n for n, item in enumerate(checklist.for_kind(registration.kind).all, 1)}
    parts = zip_parts(rows)
    replies = []
    for number, part in enumerate(parts, start=1):
        buffer, used = io.BytesIO(), set()
        # Stored, not deflated: photos, PDFs and Office files are compressed already.
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for row in part:
                folder = f"{order.get(row.item, 99):02d}-{row.item}"
                path = f"{folder}/{row.file_name}"
                if path in used:  # two files sent with the same name
                    path = f"{folder}/{row.id}-{row.file_name}"
                used.add(path)
                archive.writestr(path, await ctx.services.storage.get(row.digest))
        name = f"ho-so-{registration.code}.zip"
        caption = _("Dossier of {code}: {count} files.").format(
            code=registration.code, count=len(rows)
        )
        if len(parts) > 1:
            name = f"ho-so-{registration.code}-phan-{number}.zip"
            caption += " " + _("Part {number} of {parts}.").format(number=number, parts=len(parts))
        replies.append(Reply(caption, document=Document(name, buffer.getvalue())))
    async with ctx.writer() as session, session.begin():
        record(session, ctx.user, "dossier zip", f"{registration.code}: {len(rows)} files", True)
    return replies


def zip_parts(rows: list[DossierFile], limit: int = ZIP_PART_BYTES) -> list[list[DossierFile]]:
    """The files in groups of at most `limit` bytes each (a file alone may be up to 20 MB),
    in their order: a bot may send files of at most 50 MB on Telegram."""
    parts: list[list[DossierFile]] = [[]]
    size = 0
    for row in rows:
        if parts[-1] and size + row.size > limit:
            parts.append([])
            size = 0
        parts[-1].append(row)
        size += row.size
    return parts


async def run_purge(ctx: TaskContext) -> list[Reply]:
    """args: digests. Contents removed from the store once no dossier file refers to them."""
    await _purge(ctx, [str(d) for d in ctx.args.get("digests", [])])
    return []


async def _purge(ctx: TaskContext, digests: list[str]) -> None:
    async with ctx.reader() as session:
        gone = await unreferenced(session, digests)
    for digest in gone:
        await ctx.services.storage.delete(digest)


async def run_form(ctx: TaskContext) -> list[Reply]:
    """args: registration. The registration form, filled in, as a Word document."""
    async with ctx.reader() as session:
        registration = await session.get(Registration, int(ctx.args["registration"]))
        if registration is None or registration.submitted_by_user_id != ctx.user.id:
            return [Reply(_("This registration does not exist."))]
        content = registration_form(registration, ctx.services)
    text = _(
        "Your registration form for {code}. Print it, sign and stamp it, then send a photo or "
        "scan of it here: it ticks «{item}»."
    ).format(code=registration.code, item=_form_item_label(ctx))
    return [Reply(text, document=Document(f"phieu-dang-ky-{registration.code}.docx", content))]


def _form_item_label(ctx: TaskContext) -> str:
    item = load_checklist(ctx.services.checklist_path).item(dossier.FORM_ITEM)
    return html.escape(item.label()) if item else ""


async def run_cover(ctx: TaskContext) -> list[Reply]:
    """args: year. Per commune of the official's, the letter to the province listing its
    registrations accepted for evaluation, with how complete each dossier is."""
    year = int(ctx.args["year"])
    checklist = load_checklist(ctx.services.checklist_path)
    codes = scope_codes(ctx.area, ctx.user)
    async with ctx.reader() as session:
        accepted = await registrations_in(session, [RegistrationStatus.ACCEPTED], codes, year)
        present = await present_items(session, [r.id for r in accepted])
    replies = []
    for code in codes:
        mine = [r for r in accepted if r.commune_code == code]
        if not mine:
            continue
        rows = []
        for registration in mine:
            done = checklist.completeness(registration.kind, present[registration.id])
            rows.append((registration, f"{done.done}/{done.total}"))
        content = cover_letter(code, year, rows, ctx.services)
        commune = ctx.area.get(code)
        name = commune.short_name if commune else code
        caption = _("Cover letter of {commune} for {year}: {count} registrations.").format(
            commune=html.escape(name), year=year, count=len(mine)
        )
        replies.append(
            Reply(caption, document=Document(f"cong-van-ocop-{year}-{code}.docx", content))
        )
    if not replies:
        text = _("No registration of {year} was accepted in your communes yet.").format(year=year)
        return [Reply(text)]
    return replies


async def sweep_orphans(
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: Storage,
    now: dt.datetime,
    grace: dt.timedelta = ORPHAN_GRACE,
) -> int:
    """Remove the contents no dossier file refers to that were last written more than `grace`
    before `now`: what a crash between storing a file and committing its row (or a refused
    file) left. Returns how many went; a store that cannot be reached is left for next time."""
    before = now - grace
    removed = 0
    try:
        candidates = await storage.stored_before(before)
        for start in range(0, len(candidates), SWEEP_CHUNK):
            async with sessionmaker() as session:
                gone = await unreferenced(session, candidates[start : start + SWEEP_CHUNK])
            for digest in gone:
                removed += await storage.delete_if_older(digest, before)
    except Exception:  # the bucket or the disk: the next hour tries again
        log.warning("the dossier store could not be swept of orphan files", exc_info=True)
    if removed:
        log.info("removed %d dossier files no registration refers to", removed)
    return removed
