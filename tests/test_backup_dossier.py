"""Backups hold the dossier's files as well as the database: an office that loses its disk gets
back the scans producers sent, not only the rows that name them."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.backup import BackupJob, BackupSchedule
from bot.backup_files import BackupError, dossier_folder, restore_dossier
from bot.emulator import TelegramEmulator
from bot.settings import Settings
from models.base import utcnow
from models.db import create_engine, create_sessionmaker
from models.dossier import add_file
from models.storage import LocalStorage
from tests import factories
from tests.conftest import reset_schema
from tests.harness import BotUnderTest, Clock
from tests.test_backup import _cli, migrated  # noqa: F401 (a fixture)
from tests.test_dossier import JPEG, PDF, said_after, saved, sending_for, so_far
from tests.test_officials import make_official

SCAN = PDF + b"giay chung nhan dang ky kinh doanh" * 1000
PHOTO = JPEG + b"anh san pham"


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def _bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator, store: Path
) -> BotUnderTest:
    running = BotUnderTest(settings, engine, emulator)
    running.services = replace(running.services, storage=LocalStorage(store))
    await running.start()
    return running


@pytest.mark.both_databases
async def test_a_restored_backup_gives_the_official_the_same_files(
    settings: Settings,
    migrated: AsyncEngine,  # noqa: F811
    emulator: TelegramEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "data" / "dossier"
    monkeypatch.setenv("OCOP_DOSSIER_STORE", str(store))
    bot = await _bot(settings, migrated, emulator, store)
    try:
        producer = await sending_for(bot, 8101, "Giấy chứng nhận đăng ký kinh doanh")
        before = so_far(producer)
        await producer.send_document("dkkd.pdf", SCAN)
        await saved(producer, before)
        await producer.tap("Hình ảnh sản phẩm")
        before = so_far(producer)
        await producer.send_photo(PHOTO)
        await saved(producer, before)
        # Nothing in flight: a reply being sent when the backup is taken comes back leased to
        # the old process, and its chat waits for the lease to run out (a minute).
        await bot.drain()
        capsys.readouterr()
        code = await asyncio.to_thread(
            _cli, monkeypatch, settings.database_url, "backup", "--to", str(tmp_path / "saved")
        )
        assert code == 0
        assert "2 dossier files copied to" in capsys.readouterr().out
    finally:
        await bot.stop()

    # The disk is lost: the database and the dossier folder with it.
    await migrated.dispose()  # nobody is connected while it is restored
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            await asyncio.to_thread(Path(f"{url.database}{suffix}").unlink, missing_ok=True)
    else:
        await reset_schema(migrated)
        await migrated.dispose()
    shutil.rmtree(tmp_path / "data")
    [saved_db] = [p for p in (tmp_path / "saved").iterdir() if p.is_file()]
    code = await asyncio.to_thread(
        _cli, monkeypatch, settings.database_url, "restore", str(saved_db)
    )
    assert code == 0
    assert "2 dossier files put back into" in capsys.readouterr().out

    engine = create_engine(settings.database_url)
    bot = await _bot(settings, engine, emulator, store)
    try:
        official = await make_official(bot, 8102, "21478")
        await official.say("/pending")
        assert "📎 Hồ sơ 2/8" in official.text
        before = so_far(official)
        await official.tap("Tải hồ sơ (ZIP)")
        message = await said_after(official, "Hồ sơ OCOP-2026-0001: 2 tệp", before)
    finally:
        await bot.stop()
        await engine.dispose()
    document = message["document"]
    assert isinstance(document, dict)
    with zipfile.ZipFile(io.BytesIO(bytes(document["content"]))) as archive:
        got = sorted(_sha(archive.read(name)) for name in archive.namelist())
    assert got == sorted([_sha(SCAN), _sha(PHOTO)])


def test_a_backup_with_the_files_in_a_bucket_says_the_bucket_is_not_in_it(
    settings: Settings,
    migrated: AsyncEngine,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCOP_DOSSIER_STORE", "s3://ocop-hoso/quang-ngai")
    code = _cli(monkeypatch, settings.database_url, "backup", "--to", str(tmp_path / "saved"))
    assert code == 0
    out = capsys.readouterr().out
    assert "the dossier files are in the bucket s3://ocop-hoso/quang-ngai" in out
    assert "back the bucket up by its own means" in out
    assert not [p for p in (tmp_path / "saved").iterdir() if p.is_dir()]


async def test_daily_backups_share_unchanged_files_and_take_them_when_rotated_out(
    migrated: AsyncEngine,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    store = LocalStorage(tmp_path / "dossier")
    await store.put(_sha(PHOTO), PHOTO)
    async with create_sessionmaker(migrated)() as session, session.begin():
        owner = await factories.user(session)
        subject = await factories.subject(session, "HTX Sa Huỳnh")
        product = await factories.product(session, subject, "Nước mắm", "21478")
        row = factories.registration(session, owner, product, subject, at=utcnow())
        await session.flush()
        await add_file(
            session,
            registration_id=row.id,
            item="anh",
            digest=_sha(PHOTO),
            size=len(PHOTO),
            content_type="jpeg",
            file_name="anh.jpg",
            user_id=owner.id,
        )
    folder = tmp_path / "backups"
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    clock = Clock(dt.datetime(2026, 11, 28, 3, 0, tzinfo=zone))
    job = BackupJob(
        create_sessionmaker(migrated),
        database_url,
        BackupSchedule(folder, dt.time(2, 30), keep=2, dossier=str(store.root)),
        clock,
        zone,
    )

    def photo_in(backup: Path) -> Path:
        return dossier_folder(backup) / _sha(PHOTO)[:2] / _sha(PHOTO)

    await job(None)
    [first] = sorted(folder.glob("ocop-daily-*.sqlite"))
    assert photo_in(first).read_bytes() == PHOTO
    clock.now += dt.timedelta(days=1)
    await job(None)
    first, second = sorted(folder.glob("ocop-daily-*.sqlite"))
    # The same file is not copied again: both backups hold one copy on the disk.
    assert photo_in(second).read_bytes() == PHOTO
    assert photo_in(second).stat().st_ino == photo_in(first).stat().st_ino
    clock.now += dt.timedelta(days=1)
    await job(None)
    remaining = sorted(folder.glob("ocop-daily-*.sqlite"))
    assert first not in remaining and len(remaining) == 2
    assert not dossier_folder(first).exists()  # rotated out with its database
    assert photo_in(remaining[-1]).read_bytes() == PHOTO


async def test_a_damaged_file_in_a_backup_is_refused_not_restored(tmp_path: Path) -> None:
    backup = tmp_path / "ocop-20261201-120000.sqlite"
    good, bad = PHOTO, SCAN
    for content, written in ((good, good), (bad, bad[:-10])):  # the second lost its end
        path = dossier_folder(backup) / _sha(content)[:2] / _sha(content)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(written)
    store = LocalStorage(tmp_path / "dossier")
    with pytest.raises(BackupError, match="is damaged"):
        await restore_dossier(backup, store)
    assert not await store.exists(_sha(bad))
    assert await restore_dossier(tmp_path / "ocop-none.sqlite", store) is None
