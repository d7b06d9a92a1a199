"""A producer on Zalo registers a product by typing: numbers, or words without diacritics."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.db import create_sessionmaker
from models.domain import RegistrationKind, SubjectType, Target
from models.users import User
from tests.flows import stored_registrations
from tests.zalo_harness import (
    ZaloBotUnderTest,
    ZaloUser,
    answer_by_numbers,
    zalo_bot,
    zalo_emulator,
)

__all__ = ["zalo_bot", "zalo_emulator"]  # fixtures


def producer(bot: ZaloBotUnderTest, user_id: str = "8100000000000000001") -> ZaloUser:
    return ZaloUser(bot.emulator, bot.handled, user_id)


@pytest.mark.both_databases
async def test_a_zalo_producer_registers_answering_with_numbers(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = producer(zalo_bot)
    await user.say("/start")
    assert "Chương trình OCOP" in user.text
    assert "1. 📝 Đăng ký sản phẩm mới" in user.text

    await answer_by_numbers(user)
    summary = user.text
    for expected in ("Nước mắm cá cơm", "Phường Sa Huỳnh", "HTX Nước mắm Sa Huỳnh", "4 sao"):
        assert expected in summary
    assert "<b>" not in summary  # Zalo shows text as it is: no HTML
    await user.choose("Gửi hồ sơ")
    assert "Mã hồ sơ: OCOP-2026-0001" in user.text

    [registration] = await stored_registrations(engine)
    assert registration.channel == "zalo"
    assert registration.kind is RegistrationKind.NEW
    assert registration.commune_code == "21478"
    assert registration.subject_type is SubjectType.COOPERATIVE
    assert registration.target is Target.STAR4
    assert registration.phone == "+84905123456"
    assert registration.ecommerce is True
    async with create_sessionmaker(engine)() as session:
        person = await session.scalar(select(User).where(User.channel == "zalo"))
    assert person is not None and person.chat_id == user.user_id
    assert person.display_name == "Bà Năm"

    await user.say("hoso")
    assert "OCOP-2026-0001" in user.text and "Đã nộp, đang chờ xem xét" in user.text
    every = zalo_bot.emulator.texts_to(user.user_id)
    assert all(0 < len(text) <= 2000 and not re.search(r"</?[bi]>", text) for text in every)


async def test_the_same_registration_typed_in_words_without_diacritics(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = producer(zalo_bot)
    await user.say("đăng ký")  # the command word, typed with diacritics and a space
    assert "Ông/Bà muốn đăng ký gì?" in user.text
    for answer in (
        "danh gia lai san pham sap het han",
        "tra cau",
        "Toi Ly Son",
        "thuc pham",
        "3 sao",
        "15/03/2023",
        "ho san xuat kinh doanh co dang ky",
        "Tran Thi Bich",
        "Thon An Ba, phuong Tra Cau",
        "bo qua",
        "0905111222",
        "nang hang 3 sao len 4 sao",
        "khong",
    ):
        await user.say(answer)
        assert "⚠️" not in user.text, f"{answer!r} was not understood:\n{user.text}"
    assert "15/03/2023" in user.text
    await user.say("gui ho so")
    assert "Mã hồ sơ: OCOP-2026-0001" in user.text
    [registration] = await stored_registrations(engine)
    assert registration.kind is RegistrationKind.REEVALUATION
    assert registration.commune_code == "21451"
    assert registration.target is Target.UP_3_TO_4
    assert registration.subject_type is SubjectType.HOUSEHOLD
    assert registration.owner_name == "Tran Thi Bich"


async def test_back_and_cancel_typed(zalo_bot: ZaloBotUnderTest, engine: AsyncEngine) -> None:
    user = producer(zalo_bot)
    await user.say("dang ky")
    assert "Hoặc gõ: Quay lại · Huỷ" in user.text
    await user.say("1")
    await user.choose("Sa Huỳnh")
    await user.say("Nước mắm")
    assert "thuộc nhóm nào" in user.text
    await user.say("quay lai")
    assert "Tên sản phẩm là gì?" in user.text
    await user.say("Nước mắm cốt")
    await user.choose("Thực phẩm")
    await user.say("Quay lại")  # the label as shown, with its diacritics
    assert "thuộc nhóm nào" in user.text
    await user.say("huy")  # three answers given: the bot asks before dropping them
    assert "có chắc muốn huỷ" in user.text and "1. 🗑 Có, huỷ hồ sơ" in user.text
    await user.say("1")
    assert "Đã huỷ" in user.text and "1. 📝 Đăng ký sản phẩm mới" in user.text
    assert await stored_registrations(engine) == []
    await user.say("1")  # the main menu's first entry: a new product, from the start
    assert "xã/phường nào" in user.text
    await user.say("/huy")
    assert "Đã huỷ" in user.text and "1. 📝 Đăng ký sản phẩm mới" in user.text


async def test_a_restart_mid_form_loses_nothing(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = producer(zalo_bot)
    await user.say("dangky")
    await user.say("1")
    await user.choose("Sa Huỳnh")
    await user.say("Mắm ruốc")
    assert "thuộc nhóm nào" in user.text
    group = user.number("Thực phẩm")

    await zalo_bot.restart()
    await user.say(group)  # the menu sent before the restart is still understood
    assert "hình thức nào" in user.text
    await user.choose("Hộ sản xuất")
    await user.say("Lê Thị Hoa")
    await user.say("Thôn 2, phường Sa Huỳnh")
    await user.say("bo qua")
    await user.say("0912345678")
    await user.choose("3 sao")
    await user.choose("Không")
    await user.choose("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.product_name == "Mắm ruốc"
    assert registration.owner_name == "Lê Thị Hoa"


async def test_a_message_delivered_twice_is_answered_once(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = producer(zalo_bot)
    await user.say("dangky")
    await user.say("1")
    await user.choose("Sa Huỳnh")
    first = await user.say("Nước mắm cá cơm")
    assert first and "thuộc nhóm nào" in user.text
    again = await user.redeliver(user.last_update)
    assert again == []  # handled, and nothing said
    await user.choose("Thực phẩm")
    assert "hình thức nào" in user.text  # one answer recorded, the form one step further


async def test_pictures_stickers_and_unsupported_messages_get_a_please_type(
    zalo_bot: ZaloBotUnderTest,
) -> None:
    user = producer(zalo_bot)
    await user.say("dangky")
    await user.say("1")
    await user.choose("Sa Huỳnh")
    await user.send_sticker()
    assert "Ông/Bà vui lòng gõ câu trả lời bằng chữ." in user.text
    assert "Tên sản phẩm là gì?" in user.text  # and the same question again
    await user.send_image()
    assert "Ông/Bà vui lòng gõ câu trả lời bằng chữ." in user.text
    await user.send_unsupported()
    assert "Ông/Bà vui lòng gõ câu trả lời bằng chữ." in user.text
    await user.say("Nước mắm")
    assert "thuộc nhóm nào" in user.text
