"""The operator's commands: `ocop-bot backup`, `restore` and `check` (kept apart from cli.py's
serving commands; cli.py adds them to its parser and hands them their arguments)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from bot.settings import Settings

COMMANDS = ("backup", "restore", "check")


def add_commands(commands: argparse._SubParsersAction) -> None:
    backup = commands.add_parser(
        "backup",
        help="write a consistent copy of the database while the bot runs",
        description="SQLite: a copy by the online backup API, consistent while the bot runs. "
        "PostgreSQL: a pg_dump file (custom format; needs the PostgreSQL client installed). "
        "Restore it with `ocop-bot restore FILE`.",
    )
    backup.add_argument(
        "--to", metavar="DIR", help="folder to write it in (default: OCOP_BACKUP_DIR)"
    )
    restore = commands.add_parser(
        "restore",
        help="replace the database with a backup",
        description="Replace the database at DATABASE_URL with a file `ocop-bot backup` wrote. "
        "A database that holds data (or, on PostgreSQL, that others are connected to) is "
        "replaced only with --force. Then `ocop-bot run` brings the schema up to date.",
    )
    restore.add_argument("file", help="the backup file (.sqlite or .pgdump)")
    restore.add_argument(
        "--force", action="store_true", help="replace a database that holds data or is in use"
    )
    commands.add_parser(
        "check",
        help="verify settings, database, migrations, tokens and webhook; say what would be served",
        description="Check the settings, that the database answers and has every migration, "
        "that Telegram and Zalo accept the tokens, and Telegram's webhook registration. Each "
        "problem is one line; the exit code is 1 when there is one.",
    )


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.backup import BackupError, backup, backup_file_name, restore

    if args.command == "check":
        from bot.check import check

        report = asyncio.run(check(settings))
        print("\n".join(report.lines))
        return 1 if report.failed else 0
    try:
        if args.command == "backup":
            folder = Path(args.to or settings.ocop_backup_dir)
            now = dt.datetime.now().astimezone()
            written = backup(
                settings.database_url, folder / backup_file_name(settings.database_url, now)
            )
            print(f"backup written to {written}")
            return 0
        restore(settings.database_url, Path(args.file), force=args.force)
    except BackupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"restored {args.file}; `ocop-bot run` applies any newer migrations")
    return 0
