"""A producer registers products on Telegram, end to end through the emulator."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    SubjectType,
    Target,
)
from tests.flows import answer_new_product, stored_registrations
from tests.harness import BotUnderTest, Producer


@pytest.mark.both_databases
async def test_producer_registers_a_new_product_and_gets_a_receipt(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=1001)
    await producer.say("/start")
    assert "Chương trình OCOP" in producer.text
    assert "📝 Đăng ký sản phẩm mới" in producer.buttons()

    await answer_new_product(producer)
    summary = producer.text
    for expected in (
        "Nước mắm cá cơm",
        "Phường Sa Huỳnh",
        "Thực phẩm",
        "Hợp tác xã",
        "HTX Nước mắm Sa Huỳnh",
        "Nguyễn Văn A",
        "Thôn Thạnh Đức, phường Sa Huỳnh",
        "0905 123 456",
        "4 sao",
    ):
        assert expected in summary
    assert "✏️ Tên sản phẩm" in producer.buttons()

    await producer.tap("Gửi hồ sơ")
    assert "Mã hồ sơ: <b>OCOP-2026-0001</b>" in producer.text

    [registration] = await stored_registrations(engine)
    assert registration.code == "OCOP-2026-0001"
    assert registration.kind is RegistrationKind.NEW
    assert registration.target is Target.STAR4
    assert registration.programme_year == 2026
    assert registration.commune_code == "21478"
    assert registration.product_name == "Nước mắm cá cơm"
    assert registration.product_group is ProductGroup.FOOD
    assert registration.subject_type is SubjectType.COOPERATIVE
    assert registration.subject_name == "HTX Nước mắm Sa Huỳnh"
    assert registration.owner_name == "Nguyễn Văn A"
    assert registration.phone == "+84905123456"
    assert registration.ecommerce is True
    assert registration.status is RegistrationStatus.SUBMITTED

    await producer.say("/hoso")
    assert "OCOP-2026-0001" in producer.text
    assert "Đã nộp, đang chờ xem xét" in producer.text


async def test_reevaluation_without_a_certificate_on_file(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=1002)
    await producer.say("/start")
    await producer.tap("Đăng ký đánh giá lại")
    assert "xã/phường nào" in producer.text  # the kind came from the menu
    await producer.tap("Trà Câu")
    await producer.say("Tỏi Lý Sơn")
    await producer.tap("Thực phẩm")
    assert "đang đạt mấy sao" in producer.text
    await producer.tap("3 sao")
    assert "Giấy chứng nhận OCOP được cấp ngày nào" in producer.text
    await producer.say("15/03/2023")
    await producer.tap("Hộ sản xuất")
    assert "Chủ hộ là ai?" in producer.text  # a household has no separate subject name
    await producer.say("Trần Thị Bích")
    await producer.say("Thôn An Ba, phường Trà Câu")
    await producer.say("Bỏ qua")
    await producer.say("0905 111 222")
    assert "Nâng hạng 3 sao lên 4 sao" in producer.buttons()
    await producer.tap("Nâng hạng 3 sao lên 4 sao")
    await producer.tap("Không")
    assert "15/03/2023" in producer.text
    await producer.tap("Gửi hồ sơ")

    [registration] = await stored_registrations(engine)
    assert registration.kind is RegistrationKind.REEVALUATION
    assert registration.current_star == 3
    assert registration.certificate_issue_date == dt.date(2023, 3, 15)
    assert registration.target is Target.UP_3_TO_4
    assert registration.subject_type is SubjectType.HOUSEHOLD
    assert registration.subject_name == "Trần Thị Bích"
    assert registration.ecommerce is False


async def test_reevaluation_when_the_certificate_date_is_not_known(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=1003)
    await producer.say("/dangky")
    await producer.tap("Nâng hạng sao")
    await producer.tap("Nguyễn Nghiêm")
    await producer.say("Mật ong rừng")
    await producer.tap("Thực phẩm")
    # The upgrade says the current star itself, so the date is the next question.
    assert "Giấy chứng nhận OCOP được cấp ngày nào" in producer.text
    await producer.tap("Không nhớ")
    await producer.tap("Doanh nghiệp")
    await producer.say("Công ty TNHH Mật ong Ba Tơ")
    await producer.say("Phạm Văn Cường")
    await producer.say("Thôn 1, xã Nguyễn Nghiêm")
    await producer.say("Bỏ qua")
    await producer.say("0355 123 456")
    # An upgrade can only go one star up; 5 stars is the top.
    assert producer.buttons()[:2] == ["Nâng hạng 3 sao lên 4 sao", "Nâng hạng 4 sao lên 5 sao"]
    await producer.tap("Nâng hạng 4 sao lên 5 sao")
    await producer.tap("Có")
    assert "Nâng hạng 4 sao lên 5 sao" in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.target is Target.UP_4_TO_5
    assert registration.certificate_issue_date is None
    assert registration.current_star == 4


async def test_three_products_reuse_the_producer_details(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=1004)
    await answer_new_product(producer, product="Nước mắm cá cơm")
    await producer.tap("Gửi hồ sơ")
    for product in ("Mắm ruốc", "Cá cơm khô"):
        await producer.tap("Đăng ký sản phẩm khác")
        await producer.tap("Sa Huỳnh")
        await producer.say(product)
        await producer.tap("Thực phẩm")
        assert "Dùng lại thông tin người sản xuất" in producer.text
        assert "HTX Nước mắm Sa Huỳnh" in producer.text
        assert "0905 123 456" in producer.text
        await producer.tap("Có")
        # Owner, subject, address and phone are not asked again.
        assert "vị trí" in producer.text
        await producer.say("Bỏ qua")
        await producer.tap("3 sao")
        await producer.tap("Không")
        assert "Nguyễn Văn A" in producer.text
        await producer.tap("Gửi hồ sơ")

    registrations = await stored_registrations(engine)
    assert [r.code for r in registrations] == ["OCOP-2026-0001", "OCOP-2026-0002", "OCOP-2026-0003"]
    assert [r.product_name for r in registrations] == ["Nước mắm cá cơm", "Mắm ruốc", "Cá cơm khô"]
    assert {r.subject_id for r in registrations} == {registrations[0].subject_id}
    assert {r.owner_name for r in registrations} == {"Nguyễn Văn A"}
    assert {r.phone for r in registrations} == {"+84905123456"}


async def test_editing_two_fields_from_the_summary(bot: BotUnderTest, engine: AsyncEngine) -> None:
    producer = Producer(bot, user_id=1005)
    await answer_new_product(producer)
    await producer.tap("✏️ Tên sản phẩm")
    assert "Câu trả lời hiện tại: Nước mắm cá cơm" in producer.text
    await producer.say("Nước mắm nhĩ cá cơm")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text
    await producer.tap("✏️ Số điện thoại")
    await producer.say("0987 654 321")
    assert "Nước mắm nhĩ cá cơm" in producer.text
    assert "0987 654 321" in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.product_name == "Nước mắm nhĩ cá cơm"
    assert registration.phone == "+84987654321"
    assert registration.owner_name == "Nguyễn Văn A"


async def test_back_forgets_one_answer_and_cancel_forgets_all(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=1006)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say("Nước mắm")
    await producer.tap("Quay lại")
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("Nước mắm cốt")
    await producer.tap("Thực phẩm")
    await producer.tap("Hợp tác xã")
    await producer.say("HTX Thạnh Đức")
    await producer.say("Lê Văn Tám")
    await producer.say("Thôn Thạnh Đức")
    await producer.say("Bỏ qua")
    # The phone step shows a reply keyboard; typing its "back" label works too.
    assert producer.keyboard() is not None
    await producer.say("⬅️ Quay lại")
    assert "vị trí" in producer.text
    await producer.say("Bỏ qua")
    await producer.say("0905 123 456")
    await producer.tap("Quay lại")
    assert "Số điện thoại" in producer.text
    await producer.say("/huy")
    assert "Đã huỷ" in producer.text
    assert await stored_registrations(engine) == []
    # A fresh start asks the first question again: nothing was kept.
    await producer.say("dang ky")
    assert "Ông/Bà muốn đăng ký gì?" in producer.text
    await producer.say("huỷ")
    assert "Đã huỷ" in producer.text


async def test_the_menu_and_commands_speak_english_after_language(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=1007)
    await producer.say("/language")
    await producer.tap("English")
    assert "Language changed to English." in producer.text
    await producer.say("/register")
    assert "What would you like to register?" in producer.text
    assert "⬅️ Back" in producer.buttons()
