"""Runs CPU-heavy report work (parsing an uploaded list, building a large export) in a child
process with a time and a memory limit, so it neither stalls the bot's event loop, where every
chat is served, nor takes the bot's memory: at the time limit the child is killed, at the memory
limit it fails alone.

Children fork from multiprocessing's fork server, which has the report modules loaded already
(openpyxl alone takes about a second to import): a child starts in milliseconds, from a process
that holds no database connection and no thread of the bot.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from handlers.i18n import current_language, use_language

log = logging.getLogger(__name__)

MEMORY = 1 << 30  # address space of a child, bytes (it starts at about 200 MB)
# "__main__" too: each child runs the main script again (multiprocessing), cheap once loaded.
PRELOAD = [
    "__main__",
    "handlers.reports.certificate_import",
    "handlers.reports.export",
    "handlers.reports.offloaded",
    "models.db",
    "openpyxl",
]


class WorkerError(Exception):
    """The child ran out of time (`timeout`) or memory, or died without an answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.timeout = reason == "timeout"


def _child(
    connection: Connection,
    memory: int,
    language: str,
    function: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    use_language(language)
    outcome: tuple[str, Any]
    try:
        outcome = ("value", function(*args))
    except MemoryError:
        outcome = ("memory", None)
    except Exception as error:  # handed to the parent, raised there
        outcome = ("raised", error)
    try:
        connection.send(outcome)
    except MemoryError:
        connection.send(("memory", None))
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        connection.send(("raised", RuntimeError(f"{type(error).__name__}: {error}")))
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


async def run_in_worker(
    function: Callable[..., Any], *args: Any, seconds: float, memory: int = MEMORY
) -> Any:
    """`function(*args)` in a child process, in the current language. `function` must be found
    by name (a module's top level) and its arguments and result picklable. What it raises is
    raised here; WorkerError past a limit."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(sender, memory, current_language.get(), function, args),
        name="ocop-worker",
        daemon=True,
    )
    try:
        # Both block (the fork server starts on first use; the arguments go down a pipe).
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
    if kind == "value":
        return value
    if kind == "raised":
        raise value
    name = getattr(function, "__qualname__", function)
    log.warning("worker %s stopped: %s (exit code %s)", name, kind, process.exitcode)
    raise WorkerError(kind)
