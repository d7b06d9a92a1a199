"""Backups of the database: `ocop-bot backup` and `restore`, and the daily backup job.

SQLite is copied with its online backup API in one step, which reads one snapshot while the bot
goes on writing (WAL). PostgreSQL is dumped with pg_dump (custom format) and restored with
pg_restore; both must be installed, and a clear message says so when they are not. A backup is
written under a temporary name and renamed when complete, so a crash never leaves a half file
that looks like a backup.

The dossier's files go with each backup: bot/backup_files.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.backup_files import BackupError as BackupError
from bot.backup_files import back_up_dossier, dossier_folder
from bot.jobs import BACKUP_JOB, parse_time
from bot.settings import Settings
from models.base import run_alone

log = logging.getLogger(__name__)

MANUAL_PREFIX = "ocop-"
DAILY_PREFIX = "ocop-daily-"
SQLITE_SUFFIX = ".sqlite"
POSTGRES_SUFFIX = ".pgdump"
NO_CLIENT = (
    "{tool} is not installed, so a PostgreSQL database cannot be {done}: install the PostgreSQL "
    "client of the server's version or newer (Debian/Ubuntu: apt-get install postgresql-client)"
)


def _sqlite_file(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"cannot back up the SQLite database {database or '(none)'!r}")
    return Path(database)


def _libpq(url: URL, tool: str, done: str) -> tuple[list[str], dict[str, str]]:
    """The command (tool and connection options) and environment for a PostgreSQL client."""
    program = shutil.which(tool)
    if program is None:
        raise BackupError(NO_CLIENT.format(tool=tool, done=done))
    command = [program, "--no-password"]
    if url.host:
        command += ["--host", url.host]
    if url.port:
        command += ["--port", str(url.port)]
    if url.username:
        command += ["--username", url.username]
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    return command, environment


def _run(command: list[str], environment: dict[str, str]) -> None:
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.splitlines() if line.strip()]
        raise BackupError(f"{Path(command[0]).name} failed: {lines[-1] if lines else 'no output'}")


def backup_file_name(database_url: str, now: dt.datetime, prefix: str = MANUAL_PREFIX) -> str:
    suffix = (
        SQLITE_SUFFIX
        if make_url(database_url).get_backend_name() == "sqlite"
        else (POSTGRES_SUFFIX)
    )
    return f"{prefix}{now:%Y%m%d-%H%M%S}{suffix}"


def backup(database_url: str, target: Path) -> Path:
    """Write a consistent copy of the database to `target` (blocking: run it in a thread)."""
    url = make_url(database_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        if url.get_backend_name() == "sqlite":
            source_file = _sqlite_file(url)
            if not source_file.exists():
                raise BackupError(f"there is no database at {source_file}")
            with (
                closing(sqlite3.connect(source_file, timeout=30)) as source,
                closing(sqlite3.connect(partial)) as copy,
            ):
                source.backup(copy)  # all pages in one step: one snapshot
        else:
            command, environment = _libpq(url, "pg_dump", "backed up")
            _run(
                [
                    *command,
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    str(partial),
                    "--dbname",
                    str(url.database),
                ],
                environment,
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _sqlite_holds_data(path: Path) -> int | None:
    """How many tables the database at `path` has (None: no database there)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        return int(
            connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
        )


def _check_sqlite_backup(path: Path) -> None:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            [result] = connection.execute("PRAGMA quick_check").fetchone()
            versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise BackupError(
            f"{path} is not a backup of this bot's SQLite database ({error})"
        ) from None
    if result != "ok" or not versions:
        raise BackupError(f"{path} is damaged or not a backup of this bot ({result})")


def _postgres_in_use(url: URL) -> tuple[int, int]:
    """(other sessions connected to the database, tables in its public schema)."""
    command, environment = _libpq(url, "psql", "restored")
    query = (
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()), (SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'public')"
    )
    finished = subprocess.run(
        [
            *command,
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--field-separator",
            " ",
            "--command",
            query,
            "--dbname",
            str(url.database),
        ],
        env=environment,
        capture_output=True,
        text=True,
    )
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.splitlines() if line.strip()]
        raise BackupError(f"cannot reach the database: {lines[-1] if lines else 'psql failed'}")
    sessions, tables = finished.stdout.split()
    return int(sessions), int(tables)


def restore(database_url: str, source: Path, *, force: bool = False) -> None:
    """Replace the database with the backup at `source`; without `force`, only a database that
    holds nothing and that nobody else is connected to (blocking: run it in a thread)."""
    if not source.is_file():
        raise BackupError(f"there is no backup at {source}")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        target = _sqlite_file(url)
        _check_sqlite_backup(source)
        tables = _sqlite_holds_data(target)
        if tables and not force:
            raise BackupError(
                f"the database {target} already holds data ({tables} tables); stop the bot "
                "and pass --force to replace it with the backup"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copied through SQLite's own locking, so a process that still has the file open
        # sees the restored database, never half of it.
        with (
            closing(sqlite3.connect(source, timeout=30)) as backup_db,
            closing(sqlite3.connect(target, timeout=30)) as live,
        ):
            backup_db.backup(live)
        return
    sessions, tables = _postgres_in_use(url)
    if (sessions or tables) and not force:
        raise BackupError(
            f"the database {url.database} is in use ({sessions} other connections, {tables} "
            "tables); stop the bot and pass --force to replace it with the backup"
        )
    command, environment = _libpq(url, "pg_restore", "restored")
    _run(
        [
            *command,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
            str(url.database),
            str(source),
        ],
        environment,
    )
    # Messages a process was sending when the backup was taken: that process is gone (restore
    # wants nobody connected), so they go back to the queue now rather than when their leases
    # run out a minute later, holding their chats meanwhile (SQLite's start does the same).
    command, environment = _libpq(url, "psql", "restored")
    _run(
        [
            *command,
            "--no-psqlrc",
            "--command",
            "UPDATE outbox SET status = 'pending', leased_by = NULL, lease_until = NULL "
            "WHERE status = 'sending'",
            "--dbname",
            str(url.database),
        ],
        environment,
    )


def _backups(folder: Path, prefix: str) -> list[Path]:
    """The complete backups whose names begin with `prefix`, oldest first (a `.partial` one
    that a killed process left is not a backup)."""
    return sorted(
        path
        for path in folder.glob(f"{prefix}*")
        if path.suffix in (SQLITE_SUFFIX, POSTGRES_SUFFIX)
    )


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` daily backups (manual ones are left alone)."""
    daily = _backups(folder, DAILY_PREFIX)
    gone = daily[: max(0, len(daily) - keep)]
    for path in gone:
        path.unlink(missing_ok=True)
        shutil.rmtree(dossier_folder(path), ignore_errors=True)
    return gone


@dataclass
class BackupSchedule:
    folder: Path
    at: dt.time
    keep: int  # daily backups kept; 0 turns the job off
    dossier: str = ""  # the dossier store (a folder, or s3://…), whose files go with each backup

    @classmethod
    def of(cls, settings: Settings) -> BackupSchedule:
        return cls(
            Path(settings.ocop_backup_dir),
            parse_time(settings.ocop_backup_time),
            settings.ocop_backup_keep,
            settings.ocop_dossier_store,
        )


class BackupJob:
    """Each tick: once the local time is past the backup time and today has no daily backup,
    write one and prune the oldest. A bot down at that time backs up when it is back."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        database_url: str,
        schedule: BackupSchedule,
        clock: Any,
        timezone: dt.tzinfo,
    ) -> None:
        self.sessionmaker, self.database_url, self.schedule = sessionmaker, database_url, schedule
        self.clock, self.timezone = clock, timezone
        self._failed_on: dt.date | None = None

    async def __call__(self, _context: object) -> None:
        if self.schedule.keep <= 0:
            return
        local = self.clock().astimezone(self.timezone)
        if local.time() < self.schedule.at or self._failed_on == local.date():
            return
        folder = self.schedule.folder
        if _backups(folder, f"{DAILY_PREFIX}{local:%Y%m%d}-"):
            return
        target = folder / backup_file_name(self.database_url, local, DAILY_PREFIX)
        try:
            if make_url(self.database_url).get_backend_name() == "sqlite":
                # No transaction of ours: on SQLite it would hold the write lock meanwhile.
                await asyncio.to_thread(backup, self.database_url, target)
            else:
                async with self.sessionmaker() as session, session.begin():
                    if not await run_alone(session, BACKUP_JOB):  # another process is at it
                        return
                    await asyncio.to_thread(backup, self.database_url, target)
            dossier = await asyncio.to_thread(
                back_up_dossier, self.database_url, target, self.schedule.dossier
            )
        except (BackupError, OSError, sqlite3.Error) as error:
            self._failed_on = local.date()  # said once a day, tried again tomorrow
            log.error("daily backup failed: %s", error)
            return
        removed = prune(folder, self.schedule.keep)
        log.info(
            "daily backup written to %s (%d old ones removed); %s", target, len(removed), dossier
        )
