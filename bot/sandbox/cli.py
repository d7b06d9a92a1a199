"""`ocop-bot sandbox`: the real bot against the built-in emulators, with a web chat to try it
in a browser (also what `ocop-bot run` starts when no bot token is set)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # aiohttp is imported when the sandbox starts: `ocop-bot run` starts faster
    from aiohttp import web

DEFAULT_PORT = 8080
DEFAULT_FOLDER = Path("data") / "sandbox"
log = logging.getLogger(__name__)


def add_command(commands: argparse._SubParsersAction) -> None:
    """The `sandbox` subcommand, added to `ocop-bot`'s parser."""
    sandbox = commands.add_parser(
        "sandbox",
        help="try the bot in a browser, without Telegram or Zalo",
        description="Serve the real bot against the built-in Telegram and Zalo emulators, with "
        "its own SQLite database under data/sandbox/ (emptied at every start), and a web chat "
        "with sample people: two producers, a commune official, an admin. Nothing is sent to "
        "Telegram or Zalo.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to serve the page on")
    sandbox.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (default {DEFAULT_PORT}, or a free one when that is taken; 0: a free one)",
    )


def run(host: str = "127.0.0.1", port: int | None = None) -> int:
    """Serve the sandbox until Ctrl-C or SIGTERM."""
    # The jobs run every minute; in a trainer's terminal that is noise, not news.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(host, port, DEFAULT_FOLDER))
    except OSError as error:
        print(f"The sandbox cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 2
    return 0


async def _listen(runner: web.AppRunner, host: str, port: int | None) -> web.TCPSite:
    """Listen on `port`; without one, on 8080 or, when that is taken, on a free port."""
    from aiohttp import web

    site = web.TCPSite(runner, host, DEFAULT_PORT if port is None else port)
    try:
        await site.start()
    except OSError as error:
        if port is not None or error.errno != errno.EADDRINUSE:
            raise
        site = web.TCPSite(runner, host, 0)
        await site.start()
    return site


async def serve(
    host: str, port: int | None, folder: Path, stopping: asyncio.Event | None = None
) -> None:
    from aiohttp import web

    from bot.sandbox.sandbox import Sandbox
    from bot.sandbox.web import build_app

    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    sandbox = Sandbox(folder)
    runner = web.AppRunner(build_app(sandbox), access_log=None, shutdown_timeout=1.0)
    try:
        # The page first, so its address shows at once; it says "connecting" and holds what
        # the personas send until the bot is up (migrations, emulators: a few seconds).
        await runner.setup()
        await _listen(runner, host, port)
        bound = runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        print(f"OCOP bot sandbox: http://{shown}:{bound}/ (Ctrl-C to stop)", flush=True)
        await sandbox.start()  # a signal meanwhile is acted on once it is done
        await stopping.wait()
    finally:
        log.info("stopping the sandbox")
        await sandbox.close()
        await runner.cleanup()
