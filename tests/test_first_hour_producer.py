"""The producer's first hour (issue 15): a counter that counts down, nothing lost with one tap,
typed answers that need not match a whole button, names fit for the official table, the right
commune for a name that is both a current and a former unit, and the served area named."""

from __future__ import annotations

import itertools
import re

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator import TelegramEmulator
from bot.settings import Settings
from models.domain import RegistrationKind, SubjectType, Target
from tests.flows import answer_new_product, stored_registrations
from tests.harness import BotUnderTest, Producer

COUNTER = re.compile(r"<i>(Còn (\d+) câu|Câu cuối cùng)</i>")


def left(producer: Producer) -> int | None:
    """The questions left that the last answer shows (1 = the last one); None without one."""
    found = COUNTER.search(producer.text)
    if found is None:
        return None
    return int(found[2]) if found[2] else 1


async def walk(producer: Producer, steps: list[tuple[str, str]]) -> list[int | None]:
    """Answer each (how, answer) and collect the counter shown after each."""
    seen = [left(producer)]
    for how, answer in steps:
        if how == "tap":
            await producer.tap(answer)
        elif how == "contact":
            await producer.share_contact(answer)
        else:
            await producer.say(answer)
        seen.append(left(producer))
    return seen


NEW_PRODUCT = [
    ("tap", "Sa Huỳnh"),
    ("say", "Nước mắm cá cơm"),
    ("tap", "Thực phẩm"),
    ("tap", "Hợp tác xã"),
    ("say", "HTX Nước mắm Sa Huỳnh"),
    ("say", "Nguyễn Văn A"),
    ("say", "Thôn Thạnh Đức, phường Sa Huỳnh"),
    ("say", "Bỏ qua"),
    ("contact", "+84905123456"),
    ("tap", "4 sao"),
]


async def test_the_counter_counts_down_by_one_and_never_jumps(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=15001)
    await producer.say("/dangky")
    # The kind decides which questions follow: no count before it is known.
    assert left(producer) is None
    await producer.tap("Sản phẩm mới")
    seen = await walk(producer, NEW_PRODUCT)
    assert seen == list(range(11, 0, -1))  # 11 questions after the kind, one by one
    await producer.tap("Có")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text and left(producer) is None

    # Editing one answer from the summary shows no count at all.
    await producer.tap("✏️ Tên sản phẩm")
    assert "Tên sản phẩm là gì?" in producer.text and left(producer) is None
    assert "Câu trả lời hiện tại: Nước mắm cá cơm" in producer.text
    await producer.say("Nước mắm nhĩ")
    await producer.tap("Gửi hồ sơ")

    # "Register another product" starts where it should, reusing the details: it counts down
    # too, and reusing five answers only shortens it.
    await producer.tap("Đăng ký sản phẩm khác")
    assert "xã/phường nào" in producer.text
    first = left(producer)
    seen = await walk(
        producer,
        [("tap", "Sa Huỳnh"), ("say", "Mắm tôm"), ("tap", "Thực phẩm"), ("tap", "Có")],
    )
    assert first == 12 and seen[:4] == [12, 11, 10, 9]
    rest = await walk(producer, [("say", "Bỏ qua"), ("tap", "3 sao")])
    assert [seen[4], *rest[1:]] == [3, 2, 1]


async def test_a_household_re_evaluation_counts_down_without_rising(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=15002)
    await producer.say("/start")
    await producer.tap("Đăng ký đánh giá lại")
    seen = await walk(
        producer,
        [
            ("tap", "Trà Câu"),
            ("say", "Tỏi Lý Sơn"),
            ("tap", "Thực phẩm"),
            ("tap", "4 sao"),
            ("say", "15/03/2024"),
            ("tap", "Hộ sản xuất"),  # a household has no separate name: one question fewer
            ("say", "Trần Thị Bích"),
        ],
    )
    counts = [n for n in seen if n is not None]
    assert len(counts) == len(seen)
    steps = [a - b for a, b in itertools.pairwise(counts)]
    assert all(step >= 1 for step in steps), seen
    assert steps.count(1) == len(steps) - 1 and steps[5] == 2, seen
    # Keeping the star says so in words.
    await producer.say("Thôn An Ba, phường Trà Câu")
    await producer.say("Bỏ qua")
    await producer.say("0905 111 222")
    assert "Giữ 4 sao" in producer.buttons()


async def test_cancel_asks_first_and_then_shows_the_menu(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=15003)
    await answer_new_product(producer)
    await producer.tap("✖️ Huỷ")
    assert "có chắc muốn huỷ" in producer.text and "12 câu" in producer.text
    await producer.tap("Không, khai tiếp")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text  # nothing was lost
    await producer.tap("✖️ Huỷ")
    await producer.tap("Có, huỷ hồ sơ")
    assert "Đã huỷ" in producer.text
    assert "📝 Đăng ký sản phẩm mới" in producer.buttons()
    assert await stored_registrations(engine) == []

    # Typed, the same: "huỷ" asks, "không" goes on with the form.
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say("huỷ")
    assert "có chắc muốn huỷ" in producer.text
    await producer.say("không")
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("Mắm tôm")
    assert "thuộc nhóm nào" in producer.text


async def test_back_on_the_first_question_returns_to_the_menu(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=15004)
    await producer.say("/dangky")
    await producer.tap("Quay lại")
    assert "Ông/Bà muốn làm gì tiếp?" in producer.text
    assert "📝 Đăng ký sản phẩm mới" in producer.buttons()
    await producer.say("/dangky")  # nothing was half done: a fresh start
    assert "Ông/Bà muốn đăng ký gì?" in producer.text
    assert "đang khai dở" not in producer.text


async def test_a_typed_answer_takes_the_previous_buttons_away_and_no_stray_message(
    bot: BotUnderTest,
) -> None:
    producer = Producer(bot, user_id=15005)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    [question] = producer.replies
    await producer.say("Sa Huỳnh")  # typed instead of tapped
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("Nước mắm")
    group = producer.replies[-1]
    await producer.say("thuc pham")
    sent = {m["message_id"]: m for m in producer.emulator.messages_to(producer.user_id)}
    assert not sent[question["message_id"]]["reply_markup"]  # the commune's buttons are gone
    assert not sent[group["message_id"]]["reply_markup"]
    assert producer.buttons()  # the current question keeps its own

    await producer.tap("Hợp tác xã")
    await producer.say("HTX Nước mắm")
    await producer.say("Lê Văn Tám")
    await producer.say("Thôn 1, phường Sa Huỳnh")
    await producer.say("Bỏ qua")
    await producer.share_contact("+84905123456")
    # The phone keyboard goes with a message that says what was received, not a bare "👌".
    texts = [m.get("text") for m in producer.replies]
    assert "👌" not in texts
    assert texts[0] == "Đã nhận: 0905 123 456"
    assert producer.replies[0]["reply_markup"] == {"remove_keyboard": True}
    assert "hạng mấy sao" in texts[1]


async def test_typed_answers_need_not_match_a_whole_button(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=15006)
    await producer.say("/dangky")
    await producer.say("danh gia lai")
    assert "xã/phường nào" in producer.text
    await producer.say("Trà Câu")
    await producer.say("Tỏi")
    await producer.say("thuc")  # the start of one label only
    assert "đang đạt mấy sao" in producer.text
    await producer.say("3")  # the star itself, not the third button
    await producer.say("khong biet")
    assert "hình thức nào" in producer.text
    await producer.say("ho")
    assert "Chủ hộ là ai?" in producer.text
    await producer.say("Trần Thị Bích")
    await producer.say("Thôn An Ba")
    await producer.say("bo qua")
    await producer.say("0905 111 222")
    await producer.say("giu 3 sao")
    await producer.say("ko")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.kind is RegistrationKind.REEVALUATION
    assert registration.current_star == 3 and registration.target is Target.STAR3
    assert registration.certificate_issue_date is None
    assert registration.subject_type is SubjectType.HOUSEHOLD
    assert registration.ecommerce is False

    other = Producer(bot, user_id=15007)
    await other.say("/dangky")
    await other.tap("Sản phẩm mới")
    await other.tap("Sa Huỳnh")
    await other.say("Mắm")
    await other.tap("Thực phẩm")
    await other.say("ho san xuat")
    assert "Chủ hộ là ai?" in other.text
    await other.say("quay lai")
    await other.say("htx")
    assert "Tên đăng ký" in other.text  # a cooperative's registered name comes next


async def test_names_are_capitalized_and_unaccented_ones_are_questioned(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=15008)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Nguyễn Nghiêm")
    await producer.say("nước mắm")
    await producer.tap("Thực phẩm")
    await producer.tap("Hộ sản xuất")
    await producer.say("nguyen van ba")
    await producer.say("thon 3 pho phong")
    await producer.say("Bỏ qua")
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    await producer.tap("Không")
    summary = producer.text
    assert "Nước mắm" in summary and "Nguyen Van Ba" in summary and "Thon 3 Pho Phong" in summary
    assert "Ông/Bà có muốn gõ lại có dấu không?" in summary
    await producer.tap("Gõ lại: Chủ hộ")
    await producer.say("nguyễn văn bá")
    assert "có dấu không" not in producer.text
    assert "Nguyễn Văn Bá" in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.owner_name == registration.subject_name == "Nguyễn Văn Bá"
    assert registration.address == "Thon 3 Pho Phong"
    assert registration.product_name == "Nước mắm"


async def test_a_name_of_a_current_and_a_former_unit_is_asked(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=15009)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.say("Nguyễn Nghiêm")
    assert "là tên của nhiều nơi" in producer.text
    buttons = producer.buttons()
    assert "Xã Nguyễn Nghiêm (đơn vị mới)" in buttons
    assert "Phường Nguyễn Nghiêm cũ, nay thuộc Phường Đức Phổ" in buttons
    await producer.tap("Phường Nguyễn Nghiêm cũ")
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("/huy")

    # The type word decides without asking.
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.say("phuong Nguyen Nghiem")
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say("Bánh tráng")
    await producer.tap("Thực phẩm")
    await producer.tap("Hộ sản xuất")
    await producer.say("Võ Thị Hoa")
    await producer.say("Tổ dân phố 2, phường Nguyễn Nghiêm cũ")
    await producer.say("Bỏ qua")
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    await producer.tap("Không")
    assert "Phường Đức Phổ (trước đây: Phường Nguyễn Nghiêm" in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.commune_code == "21439"
    assert registration.legacy_commune == "Phường Nguyễn Nghiêm (Thị xã Đức Phổ)"


async def test_the_served_area_is_named_and_other_communes_are_not_served_here(
    bot: BotUnderTest,
) -> None:
    producer = Producer(bot, user_id=15010)
    await producer.say("/start")
    area = "các xã, phường Đức Phổ, Trà Câu, Nguyễn Nghiêm, Khánh Cường, Sa Huỳnh (Quảng Ngãi)"
    assert f"Bot tiếp nhận hồ sơ của {area}." in producer.text
    assert "Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi" in producer.text
    await producer.say("/help")
    assert f"Bot tiếp nhận hồ sơ của {area}." in producer.text
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.say("Lý Sơn")  # a real unit of the province, served by another office
    assert "Đặc khu Lý Sơn không thuộc địa bàn bot này phục vụ" in producer.text
    assert "vui lòng liên hệ Văn phòng Điều phối" in producer.text
    assert "Không tìm thấy" not in producer.text
    await producer.say("Hà Lội")  # no such place at all
    assert "không thuộc địa bàn" not in producer.text


async def test_the_served_area_and_the_office_come_from_the_settings(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    configured = settings.model_copy(
        update={
            "ocop_area_name": "thị xã Đức Phổ cũ",
            "ocop_office_contact": "Phòng Kinh tế, số 0255 3859 123",
        }
    )
    bot = BotUnderTest(configured, engine, emulator)
    await bot.start()
    try:
        producer = Producer(bot, user_id=15011)
        await producer.say("/start")
        assert "Bot tiếp nhận hồ sơ của thị xã Đức Phổ cũ." in producer.text
        assert "liên hệ Phòng Kinh tế, số 0255 3859 123." in producer.text
        await producer.say("/dangky")
        await producer.tap("Sản phẩm mới")
        await producer.say("Trà Bồng")
        assert (
            "Xã Trà Bồng không thuộc địa bàn bot này phục vụ: bot chỉ tiếp nhận hồ sơ của thị xã "
            "Đức Phổ cũ. Ông/Bà vui lòng liên hệ Phòng Kinh tế, số 0255 3859 123."
        ) in producer.text
    finally:
        await bot.stop()


async def test_the_wording_a_producer_reads(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=15012)
    await producer.say("/lenhla")
    assert "Không có lệnh này." in producer.text
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say("Nước mắm")
    await producer.tap("Thực phẩm")
    assert "Ông/Bà sản xuất theo hình thức nào?" in producer.text
    await producer.tap("Hộ sản xuất")
    assert "Chủ hộ là ai?" in producer.text and "pháp luật" not in producer.text
    await producer.say("Trần Văn Hai")
    await producer.say("Thôn 1, phường Sa Huỳnh")
    await producer.share_location(14.65, 109.01)
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    assert "bán trên mạng" in producer.text
    await producer.tap("Có")
    summary = producer.text
    assert "<b>Chủ hộ:</b> Trần Văn Hai" in summary
    assert "<b>Vị trí:</b> Đã gửi vị trí" in summary
    assert "<b>Hình thức sản xuất:</b>" in summary and "<b>Bán hàng qua mạng:</b> Có" in summary
    assert "bấm “Gửi hồ sơ”" in summary and "✅ Gửi hồ sơ" in producer.buttons()
