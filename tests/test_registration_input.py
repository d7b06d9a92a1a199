"""Bad input gets a short Vietnamese explanation, the same question, and loses nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.flows import stored_registrations
from tests.harness import BotUnderTest, Producer


async def _at_product_name(producer: Producer) -> None:
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in producer.text


@pytest.mark.parametrize(
    ("typed", "explanation"),
    [
        ("A", "Tên quá ngắn"),
        ("   x   ", "Tên quá ngắn"),
        ("N" * 500, "Quá dài (500 ký tự)"),
        ("🐟🐟🐟🐟", "Vui lòng gõ tên bằng chữ"),
    ],
)
async def test_bad_names_are_explained_and_asked_again(
    bot: BotUnderTest, typed: str, explanation: str
) -> None:
    producer = Producer(bot, user_id=2001)
    await _at_product_name(producer)
    await producer.say(typed)
    assert explanation in producer.text
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("Nước mắm cá cơm")
    assert "Sản phẩm thuộc nhóm nào?" in producer.text


async def test_a_photo_where_text_is_expected(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=2002)
    await _at_product_name(producer)
    await producer.send_photo()
    assert "gõ câu trả lời bằng chữ" in producer.text
    assert "Tên sản phẩm là gì?" in producer.text


async def test_a_phone_with_letters_and_an_impossible_number(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=2003)
    await _at_product_name(producer)
    await producer.say("Nước mắm")
    await producer.tap("Thực phẩm")
    await producer.tap("Hộ sản xuất")
    await producer.say("Võ Thị Hoa")
    await producer.say("Thôn Tân Phong")
    await producer.say("Bỏ qua")
    await producer.say("09o5 123 456")
    assert "chỉ gồm chữ số" in producer.text
    assert producer.keyboard() is not None  # the share-contact button is offered again
    await producer.say("12345")
    assert "Số điện thoại chưa đúng" in producer.text
    await producer.say("0905.123.456")
    assert "đăng ký hạng mấy sao" in producer.text


async def test_an_unknown_commune_offers_the_closest_units(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=2004)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.say("Hà Nội")
    assert "Không tìm thấy “Hà Nội”" in producer.text
    await producer.say("Pho Phog")  # a typo of an old name
    assert "Nguyễn Nghiêm" in producer.buttons()
    await producer.tap("Nguyễn Nghiêm")
    assert "Tên sản phẩm là gì?" in producer.text


async def test_a_button_from_an_old_message_is_refused_and_the_question_repeated(
    bot: BotUnderTest,
) -> None:
    producer = Producer(bot, user_id=2005)
    await producer.say("/dangky")
    kind_question = producer.replies[-1]
    [old_button] = [
        button["callback_data"]
        for row in kind_question["reply_markup"]["inline_keyboard"]
        for button in row
        if "Đánh giá lại" in button["text"]
    ]
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    # Press a button of the first question again, as if scrolling up in the chat.
    await producer.press(kind_question["message_id"], old_button)
    assert "Nút này thuộc tin nhắn cũ" in producer.text
    assert "Tên sản phẩm là gì?" in producer.text


async def test_nothing_entered_earlier_is_lost_after_bad_input(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=2006)
    await _at_product_name(producer)
    await producer.say("Bánh tráng")
    await producer.tap("Thực phẩm")
    await producer.tap("Hợp tác xã")
    await producer.say("😀")
    await producer.say("HTX Bánh tráng Phổ Ninh")
    await producer.send_photo()
    await producer.say("Nguyễn Thị Lan")
    await producer.say("x")
    await producer.say("Thôn Phước Hoà")
    await producer.say("Bỏ qua")
    await producer.say("abc")
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    await producer.say("maybe")
    assert "chọn một trong các nút" in producer.text
    await producer.say("khong")  # a typed option, without diacritics
    summary = producer.text
    for kept in ("Bánh tráng", "HTX Bánh tráng Phổ Ninh", "Nguyễn Thị Lan", "Thôn Phước Hoà"):
        assert kept in summary
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.subject_name == "HTX Bánh tráng Phổ Ninh"
    assert registration.ecommerce is False


@pytest.mark.parametrize(
    ("typed", "current", "legacy"),
    [
        ("Phổ Phong", "Xã Nguyễn Nghiêm", "Xã Phổ Phong"),
        ("pho thuan", "Phường Trà Câu", "Xã Phổ Thuận"),
        ("xa pho chau", "Phường Sa Huỳnh", "Xã Phổ Châu"),
    ],
)
async def test_pre_2025_commune_names_map_to_the_current_unit(
    bot: BotUnderTest, engine: AsyncEngine, typed: str, current: str, legacy: str
) -> None:
    producer = Producer(bot, user_id=2007)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.say(typed)
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("Nước mắm")
    await producer.tap("Thực phẩm")
    await producer.tap("Hộ sản xuất")
    await producer.say("Võ Văn Kiệt")
    await producer.say("Thôn 2")
    await producer.say("Bỏ qua")
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    await producer.tap("Không")
    assert f"{current} (trước đây: {legacy}" in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.commune_input == typed
    assert registration.legacy_commune is not None
    assert registration.legacy_commune.startswith(legacy)


async def test_names_with_html_characters_are_shown_as_typed(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=2008)
    await _at_product_name(producer)
    await producer.say("Mắm <ngon> & rẻ")
    await producer.tap("Thực phẩm")
    await producer.tap("Doanh nghiệp")
    await producer.say("Công ty A&B")
    await producer.say("Lê Văn <Tèo>")
    await producer.say("Thôn 1")
    # Sharing the location from the production site is stored with the registration.
    await producer.share_location(14.6551, 109.0121)
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    await producer.tap("Không")
    assert "Mắm &lt;ngon&gt; &amp; rẻ" in producer.text
    # The producer sees that the location was sent, not its raw coordinates.
    assert "Vị trí:</b> Đã gửi vị trí" in producer.text
    assert "14.65510" not in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.product_name == "Mắm <ngon> & rẻ"
    assert (registration.latitude, registration.longitude) == (14.6551, 109.0121)
