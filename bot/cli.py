"""The `ocop-bot` command: `run` serves the bot, `migrate` brings the database up to date;
`backup`, `restore` and `check` are in bot/operations.py; `sandbox` serves a web chat with
the bot against the built-in emulators (bot/sandbox/)."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from pydantic import ValidationError

from bot import operations
from bot.logs import configure_logging
from bot.sandbox import cli as sandbox_cli
from bot.settings import Settings

NO_TOKEN = """\
Neither TELEGRAM_BOT_TOKEN nor ZALO_BOT_TOKEN is set.

To get a token: open Telegram, talk to @BotFather, send /newbot, choose a name and a username
ending in "bot". BotFather answers with a token like 123456789:AAE...; put it in .env:

    TELEGRAM_BOT_TOKEN=123456789:AAE...

For Zalo: open Zalo, find "Zalo Bot Manager", create a bot and put the token it sends you in
.env as ZALO_BOT_TOKEN=... For a Zalo Official Account, see "Which Zalo channel" in
README.md (ZALO_OA_APP_ID and the settings beside it). Each channel configured is served, in
one process.

Until then, here is the sandbox: the real bot on this computer, in your browser.
"""


def load_settings() -> Settings | None:
    """The settings, or None after one line per wrong setting on stderr."""
    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"]).upper()
            print(f"setting {name}: {problem['msg']}", file=sys.stderr)
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocop-bot", description="OCOP product registration bot (Telegram and Zalo)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run",
        help="apply pending migrations, then serve the bot",
        description="Apply pending database migrations, then serve the bot on each channel "
        "whose token is set (TELEGRAM_BOT_TOKEN, ZALO_BOT_TOKEN): long polling, or a webhook "
        "when WEBHOOK_URL / ZALO_WEBHOOK_URL is set. Settings come from the environment and .env.",
    )
    commands.add_parser(
        "migrate",
        help="apply pending database migrations and exit",
        description="Bring the database at DATABASE_URL up to the newest schema.",
    )
    export = commands.add_parser(
        "export",
        help="write the official registration table of a year (XLSX or CSV)",
        description="Write the registration table of a programme year in the official layout "
        "(sheet 1) with every field (sheet 2), or as CSV.",
    )
    export.add_argument("--year", type=int, required=True, help="programme year, e.g. 2026")
    export.add_argument("-o", "--output", required=True, help="file to write (.xlsx or .csv)")
    export.add_argument(
        "--commune", action="append", default=[], help="only this commune code (repeatable)"
    )
    importer = commands.add_parser(
        "import",
        help="import existing OCOP certificates from an XLSX or CSV file",
        description="Import certificates (product, owner, subject, commune, address, phone, "
        "star, issue date, decision number, e-commerce). Valid rows are imported; each "
        "rejected row is reported with its row number and why.",
    )
    importer.add_argument("file", help="the filled template (.xlsx or .csv)")
    operations.add_commands(commands)
    sandbox_cli.add_command(commands)
    return parser


async def _export(
    settings: Settings, year: int, output: BinaryIO | TextIO, communes: list[str]
) -> int:
    from bot.app import build_services
    from handlers.reports.export import (
        ExportFilter,
        write_registration_csv,
        write_registration_xlsx,
    )
    from models.db import create_engine, create_sessionmaker

    services = build_services(settings)
    selection = ExportFilter(
        year=year,
        communes=tuple(communes) or None,
        checklist_path=services.checklist_path,
        channels=services.channels,
    )
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            if isinstance(output, io.TextIOBase):
                return await write_registration_csv(
                    session, services.area, selection, output, timezone=services.timezone
                )
            return await write_registration_xlsx(
                session,
                services.area,
                selection,
                output,  # type: ignore[arg-type]
                timezone=services.timezone,
                letterhead=services.letterhead,
                today=services.today(),
            )
    finally:
        await engine.dispose()


async def _import(settings: Settings, path: str, content: bytes) -> int:
    from bot.app import build_services
    from handlers.i18n import use_language
    from handlers.reports.certificate_import import ImportFileError, import_certificates
    from models.db import create_engine, create_sessionmaker

    use_language("vi")
    services = build_services(settings)
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            try:
                result = await import_certificates(
                    session, services.area, content, path, today=services.today()
                )
            except ImportFileError as error:
                print(error.message, file=sys.stderr)
                return 1
        print(f"imported: {result.imported}")
        for row in result.rejected:
            print(f"row {row.row}: {'; '.join(row.reasons)}")
        return 0 if not result.rejected else 3
    finally:
        await engine.dispose()


def run(settings: Settings) -> int:
    from bot.app import build_application, serve, serve_without_telegram
    from bot.migrate import upgrade
    from bot.runtime import settle_process

    if not (settings.telegram_bot_token or settings.zalo_bot_token or settings.zalo_oa_app_id):
        print(NO_TOKEN, file=sys.stderr)
        return sandbox_cli.run()
    upgrade(settings.database_url)
    if not settings.telegram_bot_token:  # Zalo alone (Bot Platform, Official Account, or both)
        try:
            asyncio.run(serve_without_telegram(settings, started=settle_process))
        except ValueError as error:  # a setting Zalo refused: say which, without a traceback
            print(error, file=sys.stderr)
            return 2
        return 0
    try:
        application = build_application(settings)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    asyncio.run(serve(application, started=settle_process))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # Durations from the Bot API (retry_after) as timedeltas, PTB's coming default.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args = _parser().parse_args(argv)
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "run":
        return run(settings)
    if args.command in operations.COMMANDS:
        return operations.run_command(args, settings)
    if args.command == "sandbox":
        return sandbox_cli.run(args.host, args.port)
    from bot.migrate import upgrade

    upgrade(settings.database_url)
    if args.command == "export":
        output = Path(args.output)
        if output.suffix.lower() == ".csv":
            # The BOM makes Excel read the Vietnamese text as UTF-8.
            with output.open("w", encoding="utf-8-sig", newline="") as text:
                count = asyncio.run(_export(settings, args.year, text, args.commune))
        else:
            with output.open("wb") as binary:
                count = asyncio.run(_export(settings, args.year, binary, args.commune))
        print(f"{count} registrations written to {output}")
        return 0
    if args.command == "import":
        content = Path(args.file).read_bytes()
        return asyncio.run(_import(settings, args.file, content))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
