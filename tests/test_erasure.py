"""Issue 12's acceptance, searched for in every column: a person who refuses consent leaves
nothing but their chat id; after /xoadulieu their name, phone, address and location are found
nowhere in the database (outbox texts and attachments included) nor in a new export."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Sequence

import openpyxl
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.jobs import REMINDER_JOB
from handlers import notices
from handlers.events import Notice
from models.db import create_sessionmaker
from models.users import User
from tests.harness import BotUnderTest, Producer
from tests.personal_data import file_text, found_everywhere
from tests.test_export_scope import file_sent
from tests.test_officials import make_official
from tests.test_reminders import at, before_expiry, certified_producer
from tests.zalo_harness import (
    ZaloBotUnderTest,
    ZaloUser,
    answer_by_numbers,
    zalo_bot,
    zalo_emulator,
)

__all__ = ["zalo_bot", "zalo_emulator"]  # fixtures

NAME = "Đinh Thị Hến"  # the producer's name on the messenger
OWNER, ADDRESS = "Đinh Văn Hàu", "Xóm Lò Vôi, thôn Thạnh Đức"
LATITUDE, LONGITUDE = 14.8712, 108.9633
DETAILS = [NAME, "Thị Hến", OWNER, "Lò Vôi", "+84905777333", "905777333", "0905 777 333",
           str(LATITUDE), str(LONGITUDE)]  # fmt: skip


async def _register_with_location(producer: Producer) -> None:
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say("Mắm rươi")
    await producer.tap("Thực phẩm")
    await producer.tap("Hộ sản xuất")
    await producer.say(OWNER)
    await producer.say(ADDRESS)
    assert "vị trí" in producer.text
    await producer.share_location(LATITUDE, LONGITUDE)
    assert "Số điện thoại" in producer.text
    await producer.share_contact("+84905777333")
    await producer.tap("3 sao")
    await producer.tap("Không")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text
    await producer.tap("Gửi hồ sơ")
    assert "OCOP-2026-0001" in producer.text


def _cells(content: bytes) -> list[str]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return [str(value) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
            for value in row if value is not None]  # fmt: skip


@pytest.mark.both_databases
async def test_after_deletedata_nothing_of_the_person_is_found_in_any_column_or_file(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 16001, "21478")
    producer = Producer(bot, user_id=16002, first_name=NAME)
    await _register_with_location(producer)
    await producer.say("/dulieu")  # their own copy, now in the outbox
    assert producer.documents()
    await official.say("/pending")  # the official's card names them
    before = _cells((await file_sent(bot, official, "/xuat 2026"))[1])  # a sheet with their details
    assert {OWNER, ADDRESS, str(LATITUDE), str(LONGITUDE)} <= set(before)
    await bot.drain()
    found = await found_everywhere(engine, DETAILS)
    assert any(hit.startswith("outbox.document") for hit in found)  # the search reads files
    assert any(hit.startswith("registrations.latitude") for hit in found)  # and numbers

    await producer.say("/xoadulieu")
    await producer.tap("Có, xoá")
    assert "Đã xoá thông tin cá nhân" in producer.text
    await official.notified("OCOP-2026-0001 (Mắm rươi) đã được rút lại")
    await bot.drain()

    assert await found_everywhere(engine, DETAILS) == []
    after = file_text((await file_sent(bot, official, "/xuat 2026"))[1])
    assert "Mắm rươi" in after  # the registration is still counted, its product named
    assert [detail for detail in DETAILS if detail in after] == []


async def test_deleting_a_zalo_producers_data_leaves_nothing_either(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8100000000000016011", "Hồ Thị Vải")
    await answer_by_numbers(user)
    await user.choose("Gửi hồ sơ")
    assert "OCOP-2026-0001" in user.text
    await user.say("/dulieu")
    details = ["Hồ Thị Vải", "Nguyễn Văn A", "Thạnh Đức", "905123456", "0905 123 456"]
    assert await found_everywhere(engine, details)

    await user.say("/xoadulieu")
    await user.choose("Có, xoá")
    assert "Đã xoá thông tin cá nhân" in user.text
    await zalo_bot.drain()
    assert await found_everywhere(engine, details) == []


async def test_a_zalo_user_who_refuses_can_read_help_and_only_their_chat_id_is_kept(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8100000000000016021", "Lò Thị Sim",
                    consents=False)  # fmt: skip
    await user.say("dang ky")
    await user.choose("Không đồng ý")
    assert "không lưu thông tin cá nhân" in user.text
    await user.say("/help")
    assert "Hướng dẫn sử dụng" in user.text
    await user.say("Lò Văn Sim, 0905 888 111, xóm Gò Gạo")  # typed anyway: not a form
    await zalo_bot.drain()
    assert await found_everywhere(engine, ["Sim", "888 111", "888111", "Gò Gạo"]) == []
    async with create_sessionmaker(engine)() as session:
        person = await session.scalar(select(User).where(User.channel_user_id == user.user_id))
    assert person is not None and person.chat_id == user.user_id
    assert (person.display_name, person.username, person.phone) == ("", None, None)


async def test_a_telegram_user_who_refuses_and_shares_a_location_leaves_no_position(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=16031, first_name="Mai Thị Cói", consents=False)
    await producer.say("/dangky")
    await producer.tap("Không đồng ý")
    await producer.share_location(LATITUDE, LONGITUDE)
    await producer.share_contact("+84905666000")
    await producer.say("/help")
    assert "Hướng dẫn sử dụng" in producer.text
    await bot.drain()
    needles = ["Cói", str(LATITUDE), str(LONGITUDE), "905666000"]
    assert await found_everywhere(engine, needles) == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_expiry_alert_being_built_during_an_erasure_does_not_name_the_erased_owner(
    bot: BotUnderTest, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL only (SQLite's one writer serializes them): the alert job has read the owner's
    name and is about to queue the officials' alert when the owner erases their data. Either
    the erasure waits and purges the alert, or the alert is built after it; never a message
    naming them left behind."""
    await make_official(bot, 16101, "21478")
    producer = await certified_producer(bot, engine, 16102)
    bot.clock.now = at(before_expiry(-1))  # expired yesterday: the officials are alerted
    built, proceed = asyncio.Event(), asyncio.Event()
    queue = notices.queue

    async def held(session: AsyncSession, items: Sequence[Notice], now: dt.datetime) -> int:
        if not built.is_set() and any("Nguyễn Văn A" in reply.text for item in items
                                      for reply in item.replies):  # fmt: skip
            built.set()
            await proceed.wait()
        return await queue(session, items, now)

    monkeypatch.setattr(notices, "queue", held)
    job = asyncio.create_task(bot.run_job(REMINDER_JOB))
    await built.wait()
    await producer.say("/xoadulieu")
    erasure = asyncio.create_task(producer.tap("Có, xoá"))
    while not erasure.done() and not await _waiting_for_a_lock(engine):
        await asyncio.wait([erasure], timeout=0.05)  # until it finished or waits for the job
    proceed.set()
    await job
    await erasure
    assert "Đã xoá thông tin cá nhân" in producer.text
    await bot.drain()
    assert await found_everywhere(engine, ["Nguyễn Văn A"]) == []


async def _waiting_for_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        )
    return bool(waiting)
