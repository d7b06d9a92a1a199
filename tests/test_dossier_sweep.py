"""Contents a crash left in the dossier's store without their row (stored, then the process
died before the row was committed) are removed by the hourly housekeeping, once they are older
than an upload takes; the files registrations refer to, and uploads in flight, stay."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator import TelegramEmulator
from bot.jobs import HOUSEKEEPING_JOB
from bot.settings import Settings
from models.storage import LocalStorage, Storage
from tests.harness import BotUnderTest
from tests.test_dossier import JPEG, saved, sending_for, so_far
from tests.test_dossier_parts import open_bucket, s3_server  # noqa: F401 (a fixture)

PHOTO = JPEG + b"anh san pham da nop"
LEFT_BY_CRASH = JPEG + b"luu xong thi tien trinh chet"
IN_FLIGHT = JPEG + b"dang tai len"
SENT_AGAIN = JPEG + b"mot tep mo coi duoc gui lai"


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def _with_store(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator, store: Storage
) -> AsyncIterator[BotUnderTest]:
    running = BotUnderTest(settings, engine, emulator)
    running.services = replace(running.services, storage=store)
    await running.start()
    yield running
    await running.stop()


async def _producer_sends_a_photo(bot: BotUnderTest) -> None:
    producer = await sending_for(bot, 8201, "Hình ảnh sản phẩm")
    before = so_far(producer)
    await producer.send_photo(PHOTO)
    await saved(producer, before)


class TestLocalFolder:
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "dossier")

    @pytest.fixture
    async def bot(
        self,
        settings: Settings,
        engine: AsyncEngine,
        emulator: TelegramEmulator,
        store: LocalStorage,
    ) -> AsyncIterator[BotUnderTest]:
        async for running in _with_store(settings, engine, emulator, store):
            yield running

    async def test_housekeeping_removes_what_a_crash_left_and_nothing_else(
        self, bot: BotUnderTest, store: LocalStorage
    ) -> None:
        await _producer_sends_a_photo(bot)
        for content in (LEFT_BY_CRASH, IN_FLIGHT, SENT_AGAIN):
            await store.put(_sha(content), content)  # stored, and no row was ever committed
        half = store.root / "ab" / ".part-k3j2"  # a write the crash cut short
        half.parent.mkdir(exist_ok=True)
        half.write_bytes(b"\xff\xd8")

        def written(content_or_path: bytes | Path, ago: dt.timedelta) -> None:
            path = (
                content_or_path
                if isinstance(content_or_path, Path)
                else store.root / _sha(content_or_path)[:2] / _sha(content_or_path)
            )
            stamp = (bot.clock() - ago).timestamp()
            os.utime(path, (stamp, stamp))

        written(PHOTO, dt.timedelta(days=3))  # old, but the registration refers to it
        written(LEFT_BY_CRASH, dt.timedelta(hours=2))
        written(half, dt.timedelta(hours=2))
        written(IN_FLIGHT, dt.timedelta(minutes=5))  # its row is being committed
        written(SENT_AGAIN, dt.timedelta(hours=2))
        # An orphan whose content a producer sends again now: the upload renews it.
        await store.put(_sha(SENT_AGAIN), SENT_AGAIN)

        await bot.run_job(HOUSEKEEPING_JOB)

        assert not await store.exists(_sha(LEFT_BY_CRASH))
        assert not half.exists()
        assert await store.get(_sha(PHOTO)) == PHOTO
        assert await store.exists(_sha(IN_FLIGHT))
        assert await store.exists(_sha(SENT_AGAIN))
        assert [p.name for p in store.root.rglob(".*")] == []  # nothing left aside


async def test_housekeeping_removes_what_a_crash_left_in_an_s3_bucket(
    settings: Settings,
    engine: AsyncEngine,
    emulator: TelegramEmulator,
    s3_server: tuple[str, str, str, str],  # noqa: F811
) -> None:
    store = open_bucket(s3_server, f"sweep-{os.getpid()}")
    async for bot in _with_store(settings, engine, emulator, store):
        await _producer_sends_a_photo(bot)
        await store.put(_sha(LEFT_BY_CRASH), LEFT_BY_CRASH)
        stored_at = dt.datetime.now(dt.UTC)  # the bucket's own clock dates the objects

        bot.clock.now = stored_at + dt.timedelta(minutes=30)  # within the grace period
        await bot.run_job(HOUSEKEEPING_JOB)
        assert await store.exists(_sha(LEFT_BY_CRASH))

        bot.clock.now = stored_at + dt.timedelta(hours=2)
        await bot.run_job(HOUSEKEEPING_JOB)
        assert not await store.exists(_sha(LEFT_BY_CRASH))
        assert await store.get(_sha(PHOTO)) == PHOTO
