"""A commune official's first hour: told of arrivals, full cards, corrections, Vietnamese
commands and menus, no product waiting twice (issue 15, the officials' items)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator import TelegramEmulator
from bot.jobs import ARRIVALS_JOB, DIGEST_JOB, MENUS_JOB
from bot.settings import Settings
from models.audit import AuditEntry
from models.db import create_sessionmaker
from models.domain import RegistrationStatus
from models.users import User
from tests.flows import answer_new_product, stored_registrations
from tests.harness import ADMIN_ID, JSON, BotUnderTest, Producer
from tests.test_officials import make_official


@pytest.fixture
async def notifying_bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> AsyncIterator[BotUnderTest]:
    """The bot as installed: officials are told of arrivals (the tests run the job)."""
    running = BotUnderTest(
        settings.model_copy(update={"ocop_arrival_notices": True}), engine, emulator
    )
    await running.start()
    yield running
    await running.stop()


async def register(bot: BotUnderTest, user_id: int, commune: str, product: str) -> Producer:
    producer = Producer(bot, user_id=user_id)
    await answer_new_product(producer, commune=commune, product=product)
    await producer.tap("Gửi hồ sơ")
    assert "Mã hồ sơ" in producer.text
    return producer


def arrivals_to(bot: BotUnderTest, chat_id: int) -> list[JSON]:
    return [
        m for m in bot.emulator.messages_to(chat_id) if "hồ sơ mới gửi đến" in (m["text"] or "")
    ]


def labels(message: JSON) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["text"] for row in rows for button in row]


async def announce(bot: BotUnderTest) -> None:
    """A minute passes: the arrivals job runs and the outbox delivers what it queued."""
    bot.clock.now += dt.timedelta(minutes=1)
    await bot.run_job(ARRIVALS_JOB)
    await bot.drain()


@pytest.mark.both_databases
async def test_officials_hear_of_arrivals_in_their_communes_in_one_message(
    notifying_bot: BotUnderTest,
) -> None:
    bot = notifying_bot
    both = await make_official(bot, 5501, "21478", "21451")
    other = await make_official(bot, 5502, "21439")
    producer = await register(bot, 5511, "Sa Huỳnh", "Nước mắm cá cơm")
    await register(bot, 5512, "Trà Câu", "Tỏi Trà Câu")
    await register(bot, 5513, "Đức Phổ", "Bánh tráng Đức Phổ")

    await announce(bot)
    [message] = arrivals_to(bot, both.user_id)  # one message for both registrations
    assert "Có 2 hồ sơ mới" in message["text"]
    assert "OCOP-2026-0001" in message["text"] and "Tỏi Trà Câu" in message["text"]
    assert "Bánh tráng" not in message["text"]  # another official's commune
    assert labels(message) == ["🔎 Xem hồ sơ OCOP-2026-0001", "🔎 Xem hồ sơ OCOP-2026-0002"]
    [theirs] = arrivals_to(bot, other.user_id)
    assert "OCOP-2026-0003" in theirs["text"] and "OCOP-2026-0001" not in theirs["text"]

    await announce(bot)  # nothing new: nobody is told twice
    assert len(arrivals_to(bot, both.user_id)) == 1

    await both.tap("Xem hồ sơ OCOP-2026-0001")
    assert "Nước mắm cá cơm" in both.text and "Tiếp nhận" in both.buttons()[0]
    await both.tap("Trả lại")
    await both.say("Thiếu giấy phép kinh doanh")
    await producer.notified("cần bổ sung")
    await producer.tap("Bổ sung và nộp lại")
    await producer.tap("✏️ Tên sản phẩm")
    await producer.say("Nước mắm cá cơm Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")

    await announce(bot)
    second = arrivals_to(bot, both.user_id)[-1]
    assert "Có 1 hồ sơ mới" in second["text"] and "OCOP-2026-0001" in second["text"]
    assert "nộp lại" in second["text"]
    assert arrivals_to(bot, other.user_id) == [theirs]

    await bot.run_job(DIGEST_JOB)  # the daily digest stays
    await both.notified("Bản tin OCOP")


async def test_an_official_turns_the_arrival_messages_off_and_on(
    notifying_bot: BotUnderTest,
) -> None:
    bot = notifying_bot
    official = await make_official(bot, 5525, "21478")
    await official.say("/huongdan")
    assert "/thongbao bat|tat" in official.text
    await official.say("/thongbao tat")
    assert "không nhận tin" in official.text and "/thongbao bat" in official.text
    await register(bot, 5526, "Sa Huỳnh", "Mắm ruốc")
    await announce(bot)
    assert arrivals_to(bot, official.user_id) == []

    await official.say("/thongbao bat")
    assert "trong vòng một phút" in official.text
    await register(bot, 5527, "Sa Huỳnh", "Nước mắm cá cơm")
    await announce(bot)
    [message] = arrivals_to(bot, official.user_id)
    assert "OCOP-2026-0002" in message["text"] and "OCOP-2026-0001" not in message["text"]
    assert "/thongbao tat" in message["text"]


async def test_with_arrival_notices_off_officials_get_the_digest_only(bot: BotUnderTest) -> None:
    assert ARRIVALS_JOB not in bot.runtime.scheduler.names
    official = await make_official(bot, 5521, "21478")
    await register(bot, 5522, "Sa Huỳnh", "Mắm ruốc")
    await bot.run_job(DIGEST_JOB)
    await official.notified("Bản tin OCOP")
    assert arrivals_to(bot, official.user_id) == []


async def _reevaluation_with_an_expired_certificate(producer: Producer) -> None:
    await producer.say("/start")
    await producer.tap("Đăng ký đánh giá lại")
    await producer.tap("Trà Câu")
    await producer.say("Tỏi Lý Sơn")
    await producer.tap("Thực phẩm")
    await producer.tap("3 sao")
    await producer.say("15/03/2023")  # valid until 15/03/2026: expired by November 2026
    await producer.tap("Hộ sản xuất")
    await producer.say("Trần Thị Bích")
    await producer.say("Thôn An Ba, phường Trà Câu")
    await producer.share_location(14.8123, 108.9456)
    await producer.say("0905 111 222")
    await producer.tap("Nâng hạng 3 sao lên 4 sao")
    await producer.tap("Có")
    await producer.tap("Gửi hồ sơ")


async def test_a_review_card_shows_every_field_and_then_the_decision(bot: BotUnderTest) -> None:
    official = await make_official(bot, 5531, "21451")
    await _reevaluation_with_an_expired_certificate(Producer(bot, user_id=5532))

    await official.say("/choduyet")
    [card] = [m for m in official.replies if "OCOP-2026-0001" in (m["text"] or "")]
    text = card["text"]
    assert "Chờ tiếp nhận" in text
    assert "Thực phẩm" in text  # product group
    assert "Hiện đạt 3 sao" in text and "15/03/2023" in text and "15/03/2026" in text
    assert "⚠️ Giấy chứng nhận đã hết hạn từ ngày 15/03/2026" in text
    assert "Bán trên sàn TMĐT" in text
    assert "maps.google.com/?q=14.812300,108.945600" in text
    assert "Thôn An Ba, phường Trà Câu" in text and "Trần Thị Bích" in text

    await official.tap("Tiếp nhận")
    assert "Đã tiếp nhận" in official.text
    edited = next(
        m
        for m in bot.emulator.sent
        if m["message_id"] == card["message_id"] and m["chat_id"] == official.user_id
    )
    assert edited["edited"] and "Chờ tiếp nhận" not in edited["text"]
    assert "Đã tiếp nhận, chờ kết quả đánh giá" in edited["text"]
    assert not (edited["reply_markup"] or {}).get("inline_keyboard")  # its buttons are spent


async def test_a_resubmitted_card_says_what_changed(bot: BotUnderTest) -> None:
    official = await make_official(bot, 5541, "21478")
    producer = await register(bot, 5542, "Sa Huỳnh", "Nước mắm cá cơm")
    await official.say("/choduyet")
    assert "nộp lại" not in official.text
    await official.tap("Trả lại")
    await official.say("Địa chỉ chưa rõ thôn")
    await producer.notified("cần bổ sung")
    await producer.tap("Bổ sung và nộp lại")
    await producer.tap("✏️ Địa chỉ sản xuất")
    await producer.say("Thôn Thạnh Đức 2, phường Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")

    await official.say("/choduyet")
    assert "🔁 Hồ sơ nộp lại; đã sửa: Địa chỉ sản xuất" in official.text
    assert "Tên sản phẩm" not in official.text.split("đã sửa:")[1].split("\n")[0]


@pytest.mark.both_databases
async def test_an_official_corrects_fields_in_review_and_after_accepting_audited(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 5551, "21478")
    producer = await register(bot, 5552, "Sa Huỳnh", "nuoc mam ca com")

    await official.say("/choduyet")
    await official.tap("Sửa thông tin")
    assert "Bấm vào mục cần sửa" in official.text and "Chỉnh sửa hồ sơ" in official.text
    await official.tap("✏️ Tên sản phẩm")
    await official.say("Nước mắm cá cơm")
    await official.tap("Lưu chỉnh sửa")
    assert "Đã sửa hồ sơ OCOP-2026-0001: Tên sản phẩm." in official.text
    assert "Chờ tiếp nhận" in official.text  # the card again, still waiting
    told = await producer.notified("đã chỉnh sửa hồ sơ OCOP-2026-0001")
    assert "Tên sản phẩm" in told

    await official.tap("Tiếp nhận")
    await official.say("/choduyet")
    await official.tap("Sửa thông tin")  # after accepting, too
    await official.tap("✏️ Người đại diện")
    await official.say("Nguyễn Văn Ba")
    await official.tap("Lưu chỉnh sửa")
    assert "Đã sửa hồ sơ OCOP-2026-0001: Người đại diện." in official.text

    [registration] = await stored_registrations(engine)
    assert registration.product_name == "Nước mắm cá cơm"
    assert registration.owner_name == "Nguyễn Văn Ba"
    assert registration.status is RegistrationStatus.ACCEPTED  # a correction decides nothing
    async with create_sessionmaker(engine)() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "correct").order_by(AuditEntry.id)
            )
        )
        user = await session.scalar(select(User).where(User.channel_user_id == "5551"))
    assert [(e.detail, e.allowed, e.user_id) for e in entries] == [
        ("OCOP-2026-0001 product_name", True, user.id if user else None),
        ("OCOP-2026-0001 owner_name", True, user.id if user else None),
    ]
    assert all("Nguyễn" not in e.detail for e in entries)  # names, not personal values

    await official.tap("Không đạt")  # decided: there is nothing left to correct
    await official.press(official.replies[-1]["message_id"], "rf:1")
    assert "đã được xử lý" in official.text


async def test_a_producer_corrects_a_submitted_registration_until_it_is_accepted(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 5561, "21478")
    producer = await register(bot, 5562, "Sa Huỳnh", "Nước mắm cá cơm")
    await producer.say("/hoso")
    await producer.tap("Sửa hồ sơ OCOP-2026-0001")
    await producer.tap("✏️ Người đại diện")
    await producer.say("Nguyễn Văn Bốn")
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.owner_name == "Nguyễn Văn Bốn"
    assert registration.status is RegistrationStatus.SUBMITTED

    await official.say("/choduyet")
    assert "🔁 Hồ sơ nộp lại; đã sửa: Người đại diện" in official.text
    await official.tap("Tiếp nhận")
    await producer.say("/hoso")
    assert "Sửa hồ sơ" not in " ".join(producer.buttons())
    await producer.press(producer.replies[-1]["message_id"], "pe:1")  # an old button
    assert "không còn sửa được" in producer.text


async def another_product(producer: Producer, product: str) -> None:
    """A second registration of the same producer, reusing the details given last time."""
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say(product)
    await producer.tap("Thực phẩm")
    assert "như lần đăng ký trước" in producer.text
    await producer.tap("Có")
    await producer.say("Bỏ qua")
    await producer.tap("4 sao")
    await producer.tap("Có")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text


@pytest.mark.both_databases
async def test_the_same_product_cannot_wait_twice(bot: BotUnderTest, engine: AsyncEngine) -> None:
    producer = await register(bot, 5571, "Sa Huỳnh", "Nước mắm cá cơm")
    await another_product(producer, "nuoc mam  CA COM")
    await producer.tap("Gửi hồ sơ")
    assert "Năm nay Ông/Bà đã đăng ký sản phẩm “Nước mắm cá cơm”" in producer.text
    assert "OCOP-2026-0001" in producer.text
    assert "Mở hồ sơ OCOP-2026-0001" in " ".join(
        label for message in producer.replies for label in labels(message)
    )
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text  # the draft is kept at its summary
    assert len(await stored_registrations(engine)) == 1

    await producer.tap("Mở hồ sơ OCOP-2026-0001")
    assert "Kiểm tra lại hồ sơ" in producer.text and "Nước mắm cá cơm" in producer.text
    await producer.tap("Gửi hồ sơ")  # the registration itself is no duplicate of itself
    assert "OCOP-2026-0001" in producer.text and "⚠️" not in producer.text
    assert len(await stored_registrations(engine)) == 1

    # Another product of the same producer goes through.
    await another_product(producer, "Mắm ruốc")
    await producer.tap("Gửi hồ sơ")
    stored = await stored_registrations(engine)
    assert [r.product_name for r in stored] == ["Nước mắm cá cơm", "Mắm ruốc"]
    # The same cooperative, found by the duplicate check's statement: not a second subject.
    assert len({r.subject_id for r in stored}) == 1


async def _scope(engine: AsyncEngine, user_id: int) -> tuple[str, list[str] | None]:
    async with create_sessionmaker(engine)() as session:
        user = await session.scalar(select(User).where(User.channel_user_id == str(user_id)))
    assert user is not None
    return user.role.value, user.scope


async def test_admins_command_in_vietnamese_and_name_communes(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    person = Producer(bot, user_id=5581)
    await person.say("/start")
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/canbo")
    assert "Cách dùng" in admin.text and "/canbo them" in admin.text
    assert "/official" not in admin.text and "add" not in admin.text

    await admin.say("/canbo them 5581 Sa Huynh, tra cau")
    assert "Phường Sa Huỳnh, Phường Trà Câu" in admin.text
    assert await _scope(engine, 5581) == ("official", ["21478", "21451"])

    await admin.say("/canbo them 5581")  # no communes: the scope stays as it was
    assert "chưa thay đổi gì" in admin.text
    assert await _scope(engine, 5581) == ("official", ["21478", "21451"])

    await admin.say("/canbo thêm 5581 Phổ Phong")  # a former commune, not a current unit
    assert "Không có xã, phường “Phổ Phong”" in admin.text
    assert await _scope(engine, 5581) == ("official", ["21478", "21451"])

    await admin.say("/canbo them 5581 phường Sa Huỳnh")
    assert await _scope(engine, 5581) == ("official", ["21478"])
    await admin.say("/canbo them 5581 tatca")
    assert await _scope(engine, 5581) == ("official", None)
    await admin.say("/canbo xoá 5581")
    assert await _scope(engine, 5581) == ("producer", None)

    await admin.say("/moi Trà Câu")
    assert "Phường Trà Câu" in admin.text and "start=" in admin.text


async def test_officials_export_by_commune_name(bot: BotUnderTest) -> None:
    official = await make_official(bot, 5591, "21478")
    await register(bot, 5592, "Sa Huỳnh", "Nước mắm cá cơm")
    await official.say("/xuat 2026 sa huynh")
    assert "Đang lập bảng" in official.text
    await official.notified("Hồ sơ đăng ký năm 2026: 1.")
    await official.say("/xuat 2026 Đức Phổ")  # not their commune
    assert "Cách dùng: /xuat" in official.text and "Sa Huỳnh" in official.text


async def test_the_command_menu_follows_the_role_and_the_language(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    menu = bot.emulator.menu_for
    assert menu()[:3] == ["dangky", "hoso", "huy"]  # what every message teaches
    assert menu(language="en")[:3] == ["register", "status", "cancel"]
    assert "choduyet" not in menu()
    assert {"choduyet", "xuat", "canbo", "dangky"} <= set(menu(ADMIN_ID))  # the admin's chat

    official = await make_official(bot, 5601, "21478")
    await bot.run_job(MENUS_JOB)
    assert {"choduyet", "xuat", "thongke", "dangky"} <= set(menu(official.user_id))
    assert "canbo" not in menu(official.user_id)

    await official.say("/ngonngu")
    await official.tap("English")
    await bot.run_job(MENUS_JOB)
    assert {"pending", "export", "register"} <= set(menu(official.user_id))

    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/canbo xoa 5601")
    await bot.run_job(MENUS_JOB)
    assert menu(official.user_id, "en")[:3] == ["register", "status", "cancel"]
    assert "pending" not in menu(official.user_id, "en")
