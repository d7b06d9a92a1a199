"""The data subject's rights: see everything kept (/dulieu), delete it (/xoadulieu), correct a
registration until an official accepts it."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.reports.export import ExportFilter, write_registration_xlsx
from models.admin_units import Area
from models.audit import AuditEntry
from models.db import create_sessionmaker
from models.domain import RegistrationStatus
from models.registrations import Subject
from tests.flows import answer_new_product, stored_registrations
from tests.harness import BotUnderTest, Producer
from tests.personal_data import found_everywhere
from tests.test_officials import make_official
from tests.test_reminders import certified_producer

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])
NAME = "Lê Thị Mận"  # the producer's Telegram name
DETAILS = ["Nguyễn Văn A", "Thạnh Đức", "+84905123456", "0905 123 456", NAME]


async def registered(bot: BotUnderTest, user_id: int) -> Producer:
    producer = Producer(bot, user_id=user_id, first_name=NAME)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    return producer


async def actions(engine: AsyncEngine) -> list[str]:
    async with create_sessionmaker(engine)() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def test_mydata_sends_everything_kept_as_a_message_and_a_file(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 14001)
    await answer_new_product(producer, commune="Sa Huỳnh", product="Mắm ruốc")
    await producer.tap("Gửi hồ sơ")

    await producer.say("/dulieu")
    assert "Những thông tin bot đang lưu" in producer.text
    assert "OCOP-2026-0001" in producer.text and "Nguyễn Văn A" in producer.text
    [(name, content)] = producer.documents()
    data = json.loads(content)
    assert name.endswith(".json")
    [registration] = data["registrations"]
    assert (registration["owner_name"], registration["phone"]) == ("Nguyễn Văn A", "+84905123456")
    assert registration["product_name"] == "Mắm ruốc" and registration["commune_code"] == "21478"
    assert [c["product"] for c in data["certificates"]] == ["Nước mắm cá cơm"]
    assert [c["decision"] for c in data["consents"]] == ["granted"]
    assert data["account"]["channel_user_id"] == "14001"
    assert "mydata" in await actions(engine)


@pytest.mark.both_databases
async def test_deletedata_erases_the_details_everywhere_and_tells_the_official(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 14011, "21478")
    producer = await registered(bot, 14012)
    await official.say("/pending")  # the official's screen names the producer
    assert "Nguyễn Văn A" in official.text
    assert await found_everywhere(engine, DETAILS)  # the search does find them

    await producer.say("/xoadulieu")
    assert "không lấy lại được" in producer.text
    await producer.tap("Có, xoá")
    assert "Đã xoá thông tin cá nhân" in producer.text
    await official.notified("OCOP-2026-0001 (Nước mắm cá cơm) đã được rút lại")
    await bot.drain()

    assert await found_everywhere(engine, DETAILS) == []
    [registration] = await stored_registrations(engine)
    assert registration.status is RegistrationStatus.WITHDRAWN
    assert (registration.product_name, registration.commune_code) == ("Nước mắm cá cơm", "21478")
    assert registration.latitude is None and registration.longitude is None
    buffer = io.BytesIO()
    async with create_sessionmaker(engine)() as session:
        await write_registration_xlsx(session, AREA, ExportFilter(2026), buffer)
    book = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))
    cells = [str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True)
             for v in row if v is not None]
    assert not [cell for cell in cells if any(d in cell for d in DETAILS)]
    assert "deletedata" in await actions(engine)


async def test_keeping_the_data_deletes_nothing(bot: BotUnderTest, engine: AsyncEngine) -> None:
    producer = await registered(bot, 14021)
    await producer.say("/xoadulieu")
    await producer.tap("Không, giữ lại")
    assert "Chưa xoá gì" in producer.text
    [registration] = await stored_registrations(engine)
    assert registration.owner_name == "Nguyễn Văn A"


async def test_withdrawing_then_deleting_from_its_button(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await registered(bot, 14031)
    await producer.say("/rutlai")
    await producer.tap("Xoá dữ liệu của tôi")
    await producer.tap("Có, xoá")
    assert await found_everywhere(engine, DETAILS) == []
    async with create_sessionmaker(engine)() as session:
        assert (await session.scalar(select(Subject))).representative == "—"  # type: ignore[union-attr]


async def test_a_producer_corrects_a_registration_until_it_is_accepted(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 14041, "21478")
    producer = await registered(bot, 14042)
    await producer.say("/hoso")
    await producer.tap("Sửa hồ sơ OCOP-2026-0001")
    await producer.tap("✏️ Người đại diện")
    await producer.say("Nguyễn Văn Bình")
    await producer.tap("Gửi hồ sơ")
    assert "OCOP-2026-0001" in producer.text
    [registration] = await stored_registrations(engine)
    assert registration.owner_name == "Nguyễn Văn Bình"
    assert registration.status is RegistrationStatus.SUBMITTED

    await official.say("/pending")
    await official.tap("Tiếp nhận")
    await producer.say("/hoso")
    assert "Sửa hồ sơ" not in " ".join(producer.buttons())
    await producer.press(producer.replies[-1]["message_id"], f"pe:{registration.id}")
    assert "không còn sửa được" in producer.text
