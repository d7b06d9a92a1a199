"""The dossier's files in backups (bot/backup.py writes the database's part).

The files (models/storage.py) are not in the database. When they are kept in a local folder, a
backup `ocop-….sqlite` gets a folder `ocop-….dossier` beside it holding every file the backed-up
database refers to, read from the backup itself, so the two always match; a file some earlier
backup holds already is hard-linked from it, so daily backups copy only what is new. `restore`
puts them back into the configured store (a folder or a bucket). A bucket (s3://) is not
copied: it must be backed up by its own means, and the commands say so.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from models.storage import DIGEST, Storage

DOSSIER_SUFFIX = ".dossier"
S3_NOT_COPIED = (
    "the dossier files are in the bucket {store}, which this backup does not copy: back the "
    "bucket up by its own means (versioning, replication, or `mc mirror` to another disk)"
)


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why, in one line."""


def dossier_folder(database_backup: Path) -> Path:
    """The folder of dossier files that goes with a database backup."""
    return database_backup.with_suffix(DOSSIER_SUFFIX)


def _sqlite_digests(path: Path) -> set[str]:
    # Immutable: nobody writes the backup, and it is left without -wal and -shm files beside it.
    with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as connection:
        known = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dossier_files'"
        ).fetchone()[0]
        if not known:  # a database from before the dossier
            return set()
        return {row[0] for row in connection.execute("SELECT DISTINCT digest FROM dossier_files")}


def _postgres_digests(dump: Path) -> set[str]:
    """The digests in the dump's copy of dossier_files: the rows pg_dump's snapshot saw."""
    program = shutil.which("pg_restore")
    if program is None:  # pg_dump was there: the same package has pg_restore
        raise BackupError("pg_restore is not installed, so the dossier files cannot be listed")
    finished = subprocess.run(
        [program, "--data-only", "--table=dossier_files", "--file=-", str(dump)],
        capture_output=True,
        text=True,
    )
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.splitlines() if line.strip()]
        raise BackupError(f"pg_restore failed: {lines[-1] if lines else 'no output'}")
    digests: set[str] = set()
    column: int | None = None
    for line in finished.stdout.splitlines():
        if column is None:
            if line.startswith("COPY ") and "dossier_files" in line:
                names = line[line.index("(") + 1 : line.index(")")].split(", ")
                column = [name.strip('"') for name in names].index("digest")
            continue
        if line == "\\.":
            break
        digests.add(line.split("\t")[column])
    return digests


@dataclass
class DossierCopy:
    folder: Path
    copied: int  # files in the backup's folder
    missing: list[str]  # referred to by the database but not in the store (removed meanwhile)


def backup_dossier(database_url: str, database_backup: Path, store: Path) -> DossierCopy:
    """Copy the files the backed-up database refers to from the local store `store` into the
    backup's dossier folder (blocking: run it in a thread)."""
    if make_url(database_url).get_backend_name() == "sqlite":
        digests = _sqlite_digests(database_backup)
    else:
        digests = _postgres_digests(database_backup)
    target = dossier_folder(database_backup)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a killed backup left
    earlier = sorted(
        (p for p in target.parent.glob(f"*{DOSSIER_SUFFIX}") if p.is_dir() and p != target),
        key=lambda p: p.name,
        reverse=True,
    )
    missing = []
    try:
        partial.mkdir(parents=True)
        for digest in sorted(digests):
            if not DIGEST.fullmatch(digest):
                continue
            destination = partial / digest[:2] / digest
            destination.parent.mkdir(exist_ok=True)
            if not _link_from(earlier, digest, destination):
                source = store / digest[:2] / digest
                if not source.is_file():
                    missing.append(digest)
                    continue
                shutil.copyfile(source, destination)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return DossierCopy(target, len(digests) - len(missing), missing)


def _link_from(earlier: list[Path], digest: str, destination: Path) -> bool:
    """Hard-link the content from the newest earlier backup that has it (no bytes copied)."""
    for folder in earlier:
        source = folder / digest[:2] / digest
        if source.is_file():
            try:
                os.link(source, destination)
            except OSError:  # a file system without hard links: copy it instead
                return False
            return True
    return False


async def restore_dossier(database_backup: Path, storage: Storage) -> int | None:
    """Put the backup's dossier files into `storage`; None when the backup has no such folder.
    Each file is checked against its name (its SHA-256) first: a damaged one is refused."""
    folder = dossier_folder(database_backup)
    if not folder.is_dir():
        return None
    restored = 0
    for path in sorted(folder.glob("??/*")):
        if not DIGEST.fullmatch(path.name):
            continue
        content = await asyncio.to_thread(path.read_bytes)
        if hashlib.sha256(content).hexdigest() != path.name:
            raise BackupError(f"the dossier file {path} is damaged (its content does not match)")
        if not await storage.exists(path.name):
            await storage.put(path.name, content)
        restored += 1
    return restored


def back_up_dossier(database_url: str, database_backup: Path, store: str) -> str:
    """Copy the dossier files that go with a backup just written, if they are in a local
    folder; one line saying what was done (blocking: run it in a thread)."""
    if not store:
        return "no dossier store is configured: the backup holds the database only"
    if store.startswith("s3://"):
        return S3_NOT_COPIED.format(store=store)
    copy = backup_dossier(database_url, database_backup, Path(store))
    line = f"{copy.copied} dossier files copied to {copy.folder}"
    if copy.missing:
        line += (
            f"; {len(copy.missing)} files the database refers to were not in {store} "
            "(removed while the backup ran?)"
        )
    return line
