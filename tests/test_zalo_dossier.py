"""The dossier on Zalo: a producer sends a product photo (the caption names its item) and the
checklist ticks; an image that is empty, not an image, or over 20 MB is refused and nothing is
stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator.zalo import ZaloEmulator
from bot.settings import Settings
from models.db import create_sessionmaker
from models.dossier import DossierFile
from models.storage import LocalStorage
from tests.test_dossier import files_in
from tests.zalo_harness import (
    ZaloBotUnderTest,
    ZaloUser,
    answer_by_numbers,
    zalo_emulator,
    zalo_settings,
)

__all__ = ["zalo_emulator"]  # a fixture

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF zalo"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "dossier"


@pytest.fixture
async def zalo_bot(
    settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator, store: Path
) -> AsyncIterator[ZaloBotUnderTest]:
    running = ZaloBotUnderTest(zalo_settings(settings, zalo_emulator), engine, zalo_emulator)
    running.services = replace(running.services, storage=LocalStorage(store))
    await running.start()
    yield running
    await running.stop()


async def said_after(user: ZaloUser, text: str, after: int) -> str:
    """The first message containing `text` among those after the first `after`."""
    async with asyncio.timeout(30):
        while True:
            messages = user.emulator.messages_to(user.user_id)
            for message in messages[after:]:
                if text in (message["text"] or ""):
                    return str(message["text"])
            await user.emulator.wait_for_messages(user.user_id, len(messages) + 1, 30)


async def registered(bot: ZaloBotUnderTest) -> ZaloUser:
    user = ZaloUser(bot.emulator, bot.handled, "8100000000000000901")
    await answer_by_numbers(user)
    await user.choose("Gửi hồ sơ")
    assert "OCOP-2026-0001" in user.text
    return user


async def rows(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(DossierFile)) or 0)


async def test_a_zalo_photo_captioned_with_its_item_ticks_the_checklist(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine, store: Path
) -> None:
    user = await registered(zalo_bot)
    before = len(user.emulator.messages_to(user.user_id))
    await user.send_image(JPEG, caption="ảnh sản phẩm")
    text = await said_after(user, "Đã lưu", before)
    assert "«Hình ảnh sản phẩm»" in text and "đã có 1/8" in text
    assert "<b>" not in text
    assert await rows(engine) == 1
    assert len(files_in(store)) == 1


@pytest.mark.parametrize(
    ("content", "explanation"),
    [
        (b"", "Tệp này trống (0 byte)"),
        (b"MZ\x90\x00 not a photo", "chỉ nhận ảnh chụp và bản quét"),
        (JPEG + b"\0" * (25 * 1024 * 1024), "lớn hơn 20 MB"),
    ],
    ids=["empty", "not an image", "25 MB"],
)
async def test_a_zalo_image_that_cannot_be_taken_is_refused(
    zalo_bot: ZaloBotUnderTest,
    engine: AsyncEngine,
    store: Path,
    content: bytes,
    explanation: str,
) -> None:
    user = await registered(zalo_bot)
    before = len(user.emulator.messages_to(user.user_id))
    await user.send_image(content, caption="nhãn")
    await said_after(user, explanation, before)
    assert await rows(engine) == 0
    assert files_in(store) == []
