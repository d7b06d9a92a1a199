"""Parses an uploaded certificate list in a child process with a time and a memory limit, so a
large or hostile spreadsheet (a zip bomb, a million styled rows) neither blocks the event loop
nor takes the bot's memory: the child is killed at the time limit and fails alone at the memory
limit, and the admin is told the file could not be read.

Children fork from multiprocessing's fork server, which has the parser's modules loaded already
(openpyxl alone takes about a second to import): a parse starts in milliseconds, from a process
that holds no database connection and no thread of the bot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from handlers.i18n import _, current_language, use_language
from handlers.reports.certificate_import import Checked, ImportFileError, parse_certificates
from models.admin_units import Area

log = logging.getLogger(__name__)

PARSE_SECONDS = 60.0
PARSE_MEMORY = 1 << 30  # address space of the child, bytes (it starts at about 200 MB)
# "__main__" too: each child runs the main script again (multiprocessing), cheap once loaded.
PRELOAD = ["__main__", "handlers.reports.certificate_import", "openpyxl"]

# A top-level function (the child finds it by name): parse_certificates, or a test's stand-in.
Parser = Callable[[bytes, str, Area, dt.date], list[Checked]]


# What the import task runs, within these limits (module attributes: tests change them).
PARSER: Parser = parse_certificates


class UnreadableFile(ImportFileError):
    """The parse ran out of time or memory, or its process died."""


def _child(
    connection: Connection,
    parser: Parser,
    content: bytes,
    file_name: str,
    area: Area,
    today: dt.date,
    language: str,
    memory: int,
) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    use_language(language)
    outcome: tuple[str, Any]
    try:
        outcome = ("rows", parser(content, file_name, area, today))
    except ImportFileError as error:
        outcome = ("refused", error.message)
    except MemoryError:
        outcome = ("memory", None)
    try:
        connection.send(outcome)
    except MemoryError:
        connection.send(("memory", None))
    connection.close()


def _answer(connection: Connection, seconds: float) -> tuple[str, Any]:
    """The child's answer; ("timeout", None) after `seconds`, ("died", None) if it died."""
    if not connection.poll(seconds):
        return "timeout", None
    try:
        answer: tuple[str, Any] = connection.recv()
    except (EOFError, OSError):
        return "died", None
    return answer


def _too_much(reason: str) -> UnreadableFile:
    """Out of time, or out of memory (a child that died without answering was, most likely:
    RLIMIT_AS makes C code such as the XML parser fail rather than raise MemoryError)."""
    if reason != "timeout":
        message = _(
            "The file could not be read: it needs too much memory. Delete empty or formatted "
            "rows below the table, or split it into smaller files, and send it again."
        )
    else:
        message = _(
            "The file could not be read in time: it is too large or too complex. Split it into "
            "smaller files and send them again."
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
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(sender, parser, content, file_name, area, today, current_language.get(), memory),
        name="ocop-parse",
        daemon=True,
    )
    try:
        # Both block (the fork server starts on first use; the file goes down a pipe).
        await asyncio.to_thread(process.start)
        sender.close()  # the child's end: its death now reads as end of file here
        kind, value = await asyncio.to_thread(_answer, receiver, seconds)
    finally:
        # Also on cancellation: a killed child ends the wait of the thread above at once.
        sender.close()
        if process.is_alive():
            process.kill()
        if process.pid is not None:
            await asyncio.shield(asyncio.to_thread(process.join, 5))
        receiver.close()
    if kind == "rows":
        return list(value)
    if kind == "refused":
        raise ImportFileError(str(value))
    log.warning("parsing %s stopped: %s (exit code %s)", file_name, kind, process.exitcode)
    raise _too_much(kind)
