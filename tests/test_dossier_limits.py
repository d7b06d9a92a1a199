"""The dossier's total per registration holds when two files arrive at once: both are checked
before either is recorded, and only the one that fits is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator import TelegramEmulator
from bot.settings import Settings
from models.storage import LocalStorage
from tests.harness import BotUnderTest
from tests.test_dossier import PDF, files_in, said_after, sending_for, so_far, stored_rows

LIMIT = 1024 * 1024  # the office allows 1 MB per registration; each scan is 600 kB


class MeetingStore(LocalStorage):
    """The local folder, whose first two writes wait for each other: both uploads have passed
    the check of the dossier's total before either is recorded (the race, made certain)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.meeting = asyncio.Barrier(2)
        self.met = False

    async def put(self, digest: str, content: bytes) -> None:
        if not self.met:
            async with asyncio.timeout(20):
                await self.meeting.wait()
            self.met = True
        await super().put(digest, content)


@pytest.fixture
def store(tmp_path: Path) -> MeetingStore:
    return MeetingStore(tmp_path / "dossier")


@pytest.fixture
async def bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator, store: MeetingStore
) -> AsyncIterator[BotUnderTest]:
    running = BotUnderTest(settings, engine, emulator)
    running.services = replace(running.services, storage=store, dossier_max_bytes=LIMIT)
    await running.start()
    yield running
    await running.stop()


@pytest.mark.both_databases
async def test_two_scans_sent_at_once_that_together_pass_the_limit_keep_only_one(
    bot: BotUnderTest, engine: AsyncEngine, store: MeetingStore
) -> None:
    producer = await sending_for(bot, 7901, "Phiếu đăng ký sản phẩm OCOP")
    before = so_far(producer)
    await producer.send_document("mat-truoc.pdf", PDF + b"1" * 600_000)
    await producer.send_document("mat-sau.pdf", PDF + b"2" * 600_000)
    saved = await said_after(producer, "Đã lưu", before)
    refused = await said_after(producer, "Tệp này chưa được lưu: hồ sơ OCOP-2026-0001", before)
    assert store.met, "the two uploads did not run at the same time"
    assert "chỉ chứa tối đa 1 MB và đã có 0.6 MB" in str(refused["text"])
    assert "Xin xoá bớt tệp không cần" in str(refused["text"])
    await bot.drain()
    rows = await stored_rows(engine)
    assert len(rows) == 1
    [(_item, name)] = rows
    assert name in str(saved["text"])
    # The refused scan's content does not stay in the store.
    assert len(files_in(store.root)) == 1
