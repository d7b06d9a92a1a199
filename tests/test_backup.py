"""Backups as an operator takes them: `ocop-bot backup` while producers register, `ocop-bot
restore` into a fresh database, and the daily backup job with its retention."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.backup import BackupError, BackupJob, BackupSchedule, backup, restore
from bot.cli import main
from bot.emulator import TelegramEmulator
from bot.migrate import upgrade
from bot.settings import Settings
from models.db import create_engine, create_sessionmaker
from models.outbox import OutboxMessage, OutboxStatus, enqueue
from models.registrations import Registration
from tests.conftest import reset_schema
from tests.flows import answer_new_product
from tests.harness import BotUnderTest, Clock, Producer

BEFORE = 3  # producers who registered before the backup
DURING = 4  # producers registering while it runs


@pytest.fixture
async def migrated(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The database as `ocop-bot run` leaves it: every migration applied."""
    engine = create_engine(database_url)
    await reset_schema(engine)
    await asyncio.to_thread(upgrade, database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    """Another, empty database of the same kind to restore into."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield str(url.set(database=str(Path(str(url.database)).with_name("restored.db"))))
        return
    name = f"{url.database}_restored"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def _register(bot: BotUnderTest, user_id: int) -> None:
    producer = Producer(bot, user_id)
    await answer_new_product(producer, product=f"Nước mắm {user_id}")
    await producer.tap("Gửi hồ sơ")
    assert "Mã hồ sơ" in producer.text


async def _registrations(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            rows = await session.scalars(select(Registration))
            return {r.code: f"{r.product_name}|{r.owner_name}|{r.phone}" for r in rows}
    finally:
        await engine.dispose()


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", url)
    return main(list(argv))


@pytest.mark.both_databases
async def test_a_backup_taken_while_producers_register_restores_every_registration(
    settings: Settings,
    migrated: AsyncEngine,
    emulator: TelegramEmulator,
    fresh_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    bot = BotUnderTest(settings, migrated, emulator)
    await bot.start()
    try:
        for n in range(BEFORE):
            await _register(bot, 6100 + n)
        registered = await _registrations(settings.database_url)
        during = [asyncio.create_task(_register(bot, 6200 + n)) for n in range(DURING)]
        await asyncio.sleep(0)  # they have started when the backup starts
        code = await asyncio.to_thread(
            _cli, monkeypatch, settings.database_url, "backup", "--to", str(tmp_path / "saved")
        )
        assert code == 0
        await asyncio.gather(*during)
        # The database is in use: replacing it needs --force.
        refused = await asyncio.to_thread(
            _cli, monkeypatch, settings.database_url, "restore", "missing.file"
        )
        assert refused == 1
        # The database file, and beside it the folder of dossier files (none here).
        [saved] = [path for path in (tmp_path / "saved").iterdir() if path.is_file()]
        refused = await asyncio.to_thread(
            _cli, monkeypatch, settings.database_url, "restore", str(saved)
        )
        assert refused == 1
        assert "--force" in capsys.readouterr().err
        everything = await _registrations(settings.database_url)
    finally:
        await bot.stop()
    assert len(everything) == BEFORE + DURING

    assert await asyncio.to_thread(_cli, monkeypatch, fresh_url, "restore", str(saved)) == 0
    restored = await _registrations(fresh_url)
    assert registered.items() <= restored.items()  # every registration made before the backup
    assert restored.items() <= everything.items()  # and nothing half made
    # The restored database is a working one: up to date, and `check` finds nothing wrong there.
    assert await asyncio.to_thread(_cli, monkeypatch, fresh_url, "restore", str(saved)) == 1
    assert (
        await asyncio.to_thread(_cli, monkeypatch, fresh_url, "restore", "--force", str(saved)) == 0
    )
    assert await _registrations(fresh_url) == restored


def test_without_pg_dump_the_backup_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no PostgreSQL client here
    with pytest.raises(BackupError, match=r"pg_dump is not installed.*postgresql-client"):
        backup("postgresql+asyncpg://ocop@127.0.0.1/ocop", tmp_path / "x.pgdump")
    assert not list(tmp_path.glob("*.pgdump*"))


async def test_the_daily_backup_runs_once_a_day_after_its_time_and_keeps_the_newest(
    migrated: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in (25, 26, 27):  # earlier days' backups, and one the operator made by hand
        (folder / f"ocop-daily-202611{day}-023000.sqlite").write_bytes(b"old")
    (folder / "ocop-20261101-120000.sqlite").write_bytes(b"manual")
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    clock = Clock(dt.datetime(2026, 11, 28, 2, 29, tzinfo=zone))
    job = BackupJob(
        create_sessionmaker(migrated),
        database_url,
        BackupSchedule(folder, dt.time(2, 30), keep=2),
        clock,
        zone,
    )
    await job(None)
    assert len(list(folder.glob("ocop-daily-20261128-*"))) == 0  # not yet time
    clock.now = dt.datetime(2026, 11, 28, 9, 0, tzinfo=zone)  # the bot was down at 02:30
    await job(None)
    await job(None)  # and once only
    daily = sorted(path.name for path in folder.glob("ocop-daily-*"))
    assert daily == ["ocop-daily-20261127-023000.sqlite", "ocop-daily-20261128-090000.sqlite"]
    assert (folder / "ocop-20261101-120000.sqlite").exists()
    # The new one is a real copy: restoring it gives the migrated database.
    target = tmp_path / "again.db"
    restore(f"sqlite+aiosqlite:///{target}", folder / daily[-1])
    assert target.stat().st_size > 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_reply_on_the_wire_when_the_backup_was_taken_is_queued_again_by_the_restore(
    migrated: AsyncEngine,
    database_url: str,
    fresh_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process that was sending it is gone after a restore: the reply goes back to the
    queue at once instead of holding its chat until the lease runs out (SQLite's start does the
    same)."""
    now = dt.datetime.now(dt.UTC)
    async with create_sessionmaker(migrated)() as session, session.begin():
        for key in ("on-the-wire", "waiting"):
            await enqueue(
                session,
                key=key,
                channel="telegram",
                chat_id="6301",
                user_id=None,
                text=key,
                choices=None,
                document_name=None,
                document=None,
                now=now,
            )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key == "on-the-wire")
            .values(
                status=OutboxStatus.SENDING.value,
                leased_by="gone:1",
                lease_until=now + dt.timedelta(seconds=60),
            )
        )
    saved = tmp_path / "saved"
    assert (
        await asyncio.to_thread(_cli, monkeypatch, database_url, "backup", "--to", str(saved)) == 0
    )
    [backup_file] = [path for path in saved.iterdir() if path.is_file()]
    assert await asyncio.to_thread(_cli, monkeypatch, fresh_url, "restore", str(backup_file)) == 0
    restored = create_engine(fresh_url)
    try:
        async with restored.connect() as connection:
            rows = await connection.execute(
                select(OutboxMessage.key, OutboxMessage.status, OutboxMessage.leased_by)
            )
            assert sorted(rows) == [("on-the-wire", "pending", None), ("waiting", "pending", None)]
    finally:
        await restored.dispose()
