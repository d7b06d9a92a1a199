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
        "The dossier files it refers to, when OCOP_DOSSIER_STORE is a folder, go in a folder "
        "of the same name ending in .dossier beside it; a bucket (s3://) must be backed up by "
        "its own means. Restore it with `ocop-bot restore FILE`.",
    )
    backup.add_argument(
        "--to", metavar="DIR", help="folder to write it in (default: OCOP_BACKUP_DIR)"
    )
    restore = commands.add_parser(
        "restore",
        help="replace the database with a backup",
        description="Replace the database at DATABASE_URL with a file `ocop-bot backup` wrote, "
        "and put the dossier files of the .dossier folder beside it into OCOP_DOSSIER_STORE. "
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
    from bot.backup_files import back_up_dossier, restore_dossier
    from models.storage import open_storage

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
            try:
                store_line = back_up_dossier(
                    settings.database_url, written, settings.ocop_dossier_store
                )
            except (BackupError, OSError) as error:
                print(f"the dossier files could not be copied with it: {error}", file=sys.stderr)
                return 1
            print(store_line)
            return 0
        store = open_storage(  # a wrong setting is said before anything is replaced
            settings.ocop_dossier_store,
            endpoint=settings.ocop_s3_endpoint,
            access_key=settings.ocop_s3_access_key,
            secret_key=settings.ocop_s3_secret_key,
            region=settings.ocop_s3_region,
        )
        restore(settings.database_url, Path(args.file), force=args.force)
    except (BackupError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    try:
        files = asyncio.run(restore_dossier(Path(args.file), store))
    except Exception as error:  # the bucket, the disk, a damaged file: the database is back
        print(
            f"the database was restored from {args.file}, but its dossier files were not "
            f"({error}); once that is mended, run the same restore again with --force",
            file=sys.stderr,
        )
        return 1
    print(f"restored {args.file}; `ocop-bot run` applies any newer migrations")
    if files is None:
        print(
            f"this backup has no dossier folder beside it: the dossier files in "
            f"{settings.ocop_dossier_store} were left as they are"
        )
    else:
        print(f"{files} dossier files put back into {settings.ocop_dossier_store}")
    return 0
