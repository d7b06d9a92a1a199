"""Parses an uploaded certificate list in a worker process (worker.py) with a time and a memory
limit, so a large or hostile spreadsheet (a zip bomb, a million styled rows) neither blocks the
event loop nor takes the bot's memory; past a limit the admin is told the file could not be read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from handlers.i18n import _
from handlers.reports.certificate_import import Checked, ImportFileError, parse_certificates
from handlers.reports.worker import WorkerError, run_in_worker
from models.admin_units import Area

PARSE_SECONDS = 60.0
PARSE_MEMORY = 1 << 30

# A top-level function (the child finds it by name): parse_certificates, or a test's stand-in.
Parser = Callable[[bytes, str, Area, dt.date], list[Checked]]

# What the import task runs, within these limits (module attributes: tests change them).
PARSER: Parser = parse_certificates


class UnreadableFile(ImportFileError):
    """The parse ran out of time or memory, or its process died."""


def _unreadable(error: WorkerError) -> UnreadableFile:
    """Out of time, or out of memory (a child that died without answering was, most likely:
    RLIMIT_AS makes C code such as the XML parser fail rather than raise MemoryError)."""
    if error.timeout:
        message = _(
            "The file could not be read in time: it is too large or too complex. Split it into "
            "smaller files and send them again."
        )
    else:
        message = _(
            "The file could not be read: it needs too much memory. Delete empty or formatted "
            "rows below the table, or split it into smaller files, and send it again."
        )
    return UnreadableFile(message)


async def parse_in_worker(
    content: bytes,
    file_name: str,
    area: Area,
    today: dt.date,
    *,
    parser: Parser = parse_certificates,
    seconds: float = PARSE_SECONDS,
    memory: int = PARSE_MEMORY,
) -> list[Checked]:
    """`parser(content, file_name, area, today)` in a child process, in the current language;
    raises ImportFileError (UnreadableFile past a limit) like the parser itself."""
    try:
        rows: list[Checked] = await run_in_worker(
            parser, content, file_name, area, today, seconds=seconds, memory=memory
        )
    except WorkerError as error:
        raise _unreadable(error) from error
    return rows
