"""The dossier through a Zalo Official Account: an image the producer sends (its text naming
the item) goes into their registration's checklist; one that is not an image is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator.zalo_oa import ZaloOAEmulator
from bot.settings import Settings
from models.db import create_sessionmaker
from models.dossier import DossierFile
from models.storage import LocalStorage
from models.users import User
from tests import factories
from tests.harness import Clock
from tests.test_dossier import files_in
from tests.zalo_oa_harness import OABotUnderTest, OAUser, oa_clock, oa_emulator, oa_settings

__all__ = ["oa_clock", "oa_emulator"]  # fixtures

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF oa"


@pytest.fixture
async def oa_bot(
    settings: Settings,
    engine: AsyncEngine,
    oa_emulator: ZaloOAEmulator,
    oa_clock: Clock,
    tmp_path: Path,
) -> AsyncIterator[OABotUnderTest]:
    running = OABotUnderTest(oa_settings(settings, oa_emulator), engine, oa_emulator, oa_clock)
    running.services = replace(running.services, storage=LocalStorage(tmp_path / "dossier"))
    await running.start()
    yield running
    await running.stop()


async def with_registration(bot: OABotUnderTest, engine: AsyncEngine) -> OAUser:
    """An OA follower who registered a product (stored directly: the form has tests of its own)."""
    user = OAUser(bot, "6100000000000000901")
    await user.say("xin chao")
    async with create_sessionmaker(engine)() as session, session.begin():
        person = await session.scalar(select(User).where(User.channel_user_id == user.user_id))
        assert person is not None
        owner = await factories.subject(session, "HTX Sa Huỳnh")
        item = await factories.product(session, owner, "Nước mắm", "21478")
        factories.registration(session, person, item, owner, at=bot.clock.now)
    return user


async def said_after(user: OAUser, text: str, after: int) -> str:
    """The first text to `user` containing `text` among those after the first `after`."""

    def said(_rows: object) -> str | None:
        return next((t for t in user.emulator.texts_to(user.user_id)[after:] if text in t), None)

    await user.bot.sends(lambda rows: said(rows) is not None, timeout=30)
    return str(said(None))


async def stored(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(DossierFile)) or 0)


async def test_an_oa_image_goes_into_the_dossier_and_a_non_image_is_refused(
    oa_bot: OABotUnderTest, engine: AsyncEngine, tmp_path: Path
) -> None:
    user = await with_registration(oa_bot, engine)
    before = len(user.emulator.texts_to(user.user_id))
    await user.send_image(JPEG, caption="anh san pham")
    text = await said_after(user, "Đã lưu", before)
    assert "«Hình ảnh sản phẩm»" in text and "đã có 1/8" in text
    assert await stored(engine) == 1

    before = len(user.emulator.texts_to(user.user_id))
    await user.send_image(b"MZ\x90\x00 program", caption="nhan")
    await said_after(user, "chỉ nhận ảnh chụp và bản quét", before)
    assert await stored(engine) == 1
    assert len(files_in(tmp_path / "dossier")) == 1
