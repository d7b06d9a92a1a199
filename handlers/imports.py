"""The admins' certificate import as a long task: download the file (no transaction open), parse
it in a worker process (handlers/reports/parsing.py), then write the rows in short transactions.

A run after a crash must not import twice. The first run decides which rows to import and
records that on the task (`state`); each chunk of rows is written in the transaction that moves
the task's cursor past it, so a later run re-parses the file (the same rows: `today` is the
command's) and goes on from the cursor, and the report is the same as without the crash.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import time
from typing import Any

from handlers.context import TaskContext
from handlers.events import Reply
from handlers.i18n import _
from handlers.reports import parsing
from handlers.reports.certificate_import import (
    ALREADY_STORED,
    MAX_FILE_BYTES,
    ImportFileError,
    classify,
)
from models.certificate_imports import (
    ImportedCertificate,
    KnownProducers,
    serialize_imports,
    store_imported,
    stored_already,
)
from models.tasks import LeaseLost, advance_cursor, save_state

# Rows per write transaction: about 15 ms of the SQLite writer each.
CHUNK = 100
# Pause after a chunk, as a multiple of the time it took: the import has at most half the writer.
WRITE_SHARE_PAUSE = 1.0
# Above this many rows to write, the admin hears that the check is done and writing goes on.
TELL_PROGRESS_FROM = 500


def _report(imported: int, rejected: list[tuple[int, list[str]]]) -> Reply:
    lines = [_("✅ Imported certificates: {count}.").format(count=imported)]
    if rejected:
        lines += ["", _("Rows not imported ({count}):").format(count=len(rejected))]
        lines += [
            _("Row {row}: {reasons}").format(row=row, reasons=html.escape("; ".join(reasons)))
            for row, reasons in sorted(rejected)
        ]
    return Reply("\n".join(lines))


async def _decide(ctx: TaskContext, checked: list[Any]) -> dict[str, Any]:
    """Which rows to import (read only), recorded on the task before anything is written."""
    async with ctx.reader() as session:
        accepted, rejected = await classify(session, checked)
    state: dict[str, Any] = {
        "accepted": [number for number, _row in accepted],
        "rejected": [[row.row, list(row.reasons)] for row in rejected],
        "late": [],  # rows another import stored meanwhile
    }
    async with ctx.writer() as session, session.begin():
        if not await save_state(session, ctx.task_id, worker=ctx.worker, state=state):
            raise LeaseLost(ctx.task_id)
    return state


async def _write_chunk(
    ctx: TaskContext,
    known: KnownProducers,
    state: dict[str, Any],
    cursor: int,
    to: int,
    part: list[tuple[int, ImportedCertificate]],
) -> None:
    """Store `part` in the transaction that moves the cursor from `cursor` to `to`."""
    async with ctx.writer() as session, session.begin():
        # First: on PostgreSQL this locks the task's row, so a second runner cannot overlap.
        moved = await advance_cursor(
            session, ctx.task_id, worker=ctx.worker, expected=cursor, to=to
        )
        if not moved:
            raise LeaseLost(ctx.task_id)
        await serialize_imports(session)
        stored = await stored_already(session, [row for _number, row in part], known)
        checked = list(zip(part, stored, strict=True))
        late = [[number, [_(ALREADY_STORED)]] for (number, _row), old in checked if old]
        fresh = [row for (_number, row), old in checked if not old]
        await store_imported(session, fresh, known)
        if late:
            state["late"] += late
            await save_state(session, ctx.task_id, worker=ctx.worker, state=state)


async def run_import(ctx: TaskContext) -> list[Reply]:
    """args: file_id, file_name, today (ISO date of the command)."""
    file_name = str(ctx.args["file_name"])
    content = await ctx.fetch(str(ctx.args["file_id"]))
    if len(content) > MAX_FILE_BYTES:
        return [Reply(_("This file is too large (at most 5 MB)."))]
    today = dt.date.fromisoformat(str(ctx.args["today"]))
    try:
        checked = await parsing.parse_in_worker(
            content,
            file_name,
            ctx.area,
            today,
            parser=parsing.PARSER,
            seconds=parsing.PARSE_SECONDS,
            memory=parsing.PARSE_MEMORY,
        )
    except ImportFileError as error:
        return [Reply(_("Nothing was imported: {why}").format(why=html.escape(error.message)))]
    rows = {number: row for number, row in checked if isinstance(row, ImportedCertificate)}
    state = ctx.state if ctx.state is not None else await _decide(ctx, checked)
    cursor = ctx.cursor if ctx.state is not None else 0
    numbers: list[int] = state["accepted"]
    if len(numbers) - cursor >= TELL_PROGRESS_FROM:
        text = _("{rows} rows checked; importing {count} certificates…")
        await ctx.progress(text.format(rows=len(checked), count=len(numbers) - cursor))
    known = KnownProducers()  # what the chunks learn of stored subjects and products
    while cursor < len(numbers):
        chunk = numbers[cursor : cursor + CHUNK]
        # A row is missing only if the file parsed differently this time (a new version).
        part = [(number, rows[number]) for number in chunk if number in rows]
        started = time.monotonic()
        await _write_chunk(ctx, known, state, cursor, cursor + len(chunk), part)
        cursor += len(chunk)
        # As long again without the writer: a chat's next event needs several transactions in
        # a row (inbox, batch, outbox), and should not wait behind a chunk before each one.
        await asyncio.sleep((time.monotonic() - started) * WRITE_SHARE_PAUSE)
    late = [(int(row), list(reasons)) for row, reasons in state["late"]]
    rejected = [(int(row), list(reasons)) for row, reasons in state["rejected"]] + late
    imported = sum(number in rows for number in numbers) - len(late)
    return [_report(imported, rejected)]
