"""Zalo beyond the form: reminders and review outcomes that arrive on their own and are answered
with a number, an official reviewing on Zalo, long answers split, and a flaky Zalo API."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator.zalo import ZaloEmulator
from bot.settings import Settings
from models.db import create_sessionmaker
from models.domain import RegistrationKind, RegistrationStatus, Role
from models.outbox import OutboxMessage
from models.users import User
from tests import factories
from tests.flows import stored_registrations
from tests.zalo_harness import (
    ZaloBotUnderTest,
    ZaloUser,
    answer_by_numbers,
    zalo_bot,
    zalo_emulator,
    zalo_settings,
)

__all__ = ["zalo_bot", "zalo_emulator"]  # fixtures

EXPIRY = dt.date(2026, 12, 29)  # 30 days after the harness clock's 29/11/2026


async def user_row(engine: AsyncEngine, user: ZaloUser) -> User:
    async with create_sessionmaker(engine)() as session:
        found = await session.scalar(
            select(User).where(User.channel == "zalo", User.channel_user_id == user.user_id)
        )
    assert found is not None
    return found


async def certified(bot: ZaloBotUnderTest, engine: AsyncEngine, user_id: str) -> ZaloUser:
    """A Zalo producer whose fish sauce's 4-star certificate expires on 29/12/2026."""
    user = ZaloUser(bot.emulator, bot.handled, user_id)
    await user.say("xin chao")
    owner = await user_row(engine, user)
    async with create_sessionmaker(engine)() as session, session.begin():
        subject = await factories.subject(session, "HTX Nước mắm Sa Huỳnh")
        subject.owner_user_id, subject.representative = owner.id, "Nguyễn Văn A"
        item = await factories.product(session, subject, "Nước mắm cá cơm", "21478")
        factories.certificate(session, item, 4, EXPIRY - dt.timedelta(days=3 * 365 + 1))
    return user


async def test_a_reminder_is_answered_with_its_number(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = await certified(zalo_bot, engine, "8400000000000000001")
    await zalo_bot.run_reminders()
    reminder = await user.notified("29/12/2026")
    assert "1. 🔁 Đăng ký đánh giá lại" in reminder and "Trả lời 1." in reminder
    assert "<b>" not in reminder

    await user.say("1")
    assert "thông tin đã có được điền sẵn" in user.text
    await user.say("bo qua")  # the location; everything before it is on file
    await user.say("0905 111 222")
    await user.choose("Nâng hạng 4 sao lên 5 sao")
    await user.choose("Không")
    await user.say("gui ho so")
    [registration] = await stored_registrations(engine)
    assert registration.kind is RegistrationKind.REEVALUATION
    assert registration.certificate_id is not None


async def test_a_reminder_never_takes_over_a_form_in_progress(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = await certified(zalo_bot, engine, "8400000000000000002")
    await user.say("dangky")
    assert "1. Sản phẩm mới" in user.text
    await zalo_bot.run_reminders()
    await user.notified("1. 🔁 Đăng ký đánh giá lại")
    await user.say("1")  # answers the question being filled in, not the reminder
    assert "xã/phường nào" in user.text
    assert "điền sẵn" not in user.text


async def test_an_official_reviews_on_zalo_and_the_producer_completes_by_number(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    producer = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8400000000000000003")
    await answer_by_numbers(producer)
    await producer.choose("Gửi hồ sơ")
    official = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8400000000000000004", "Cán bộ")
    await official.say("xin chao")
    async with create_sessionmaker(engine)() as session, session.begin():
        row = await session.get(User, (await user_row(engine, official)).id)
        assert row is not None
        row.role = Role.OFFICIAL

    await official.say("choduyet")
    assert "OCOP-2026-0001" in official.text and "2. ↩️ Trả lại bổ sung" in official.text
    await official.say("2")
    assert "Lý do là gì?" in official.text
    await official.say("Thiếu ảnh nhãn sản phẩm")
    assert "Trả lại để bổ sung" in official.text

    told = await producer.notified("cần bổ sung")
    assert "Thiếu ảnh nhãn sản phẩm" in told and "1. ✏️ Bổ sung và nộp lại" in told
    await producer.say("1")
    assert "Ông/Bà sửa các mục cán bộ yêu cầu" in producer.text
    await producer.choose("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.status is RegistrationStatus.SUBMITTED


async def test_an_export_on_zalo_says_where_to_get_the_file(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    official = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8400000000000000008", "Cán bộ")
    await official.say("xin chao")
    async with create_sessionmaker(engine)() as session, session.begin():
        row = await session.get(User, (await user_row(engine, official)).id)
        assert row is not None
        row.role = Role.OFFICIAL
        producer = await factories.user(session)
        owner = await factories.subject(session, "HTX Nước mắm Sa Huỳnh")
        item = await factories.product(session, owner, "Nước mắm", "21478")
        factories.registration(session, producer, item, owner, at=dt.datetime.now(dt.UTC))
    await official.say("/export 2026")
    [acknowledged] = official.replies
    assert acknowledged["text"] == "Đang lập bảng…"
    result = await official.notified("Hồ sơ đăng ký năm 2026: 1.")  # when the task has run
    assert "dang-ky-ocop-2026.xlsx" in result and "Telegram" in result


async def test_a_long_answer_is_split_in_two_on_line_ends(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8400000000000000005")
    await user.say("xin chao")
    owner = await user_row(engine, user)
    async with create_sessionmaker(engine)() as session, session.begin():
        subject = await factories.subject(session, "HTX Nông sản Sa Huỳnh")
        for number in range(20):  # as many as /hoso lists
            name = f"Nước mắm cá cơm truyền thống Sa Huỳnh đặc biệt loại {number + 1}"
            item = await factories.product(session, subject, name, "21478")
            factories.registration(session, owner, item, subject, at=zalo_bot.clock.now)

    await user.say("hoso")
    first, second = user.replies
    assert 2400 < len(first["text"]) + len(second["text"]) < 2700
    assert len(first["text"]) <= 2000 and len(second["text"]) <= 2000
    lines = "\n".join([first["text"], second["text"]]).splitlines()
    assert sum("Nước mắm cá cơm truyền thống" in line for line in lines) == 20  # none cut
    assert second["text"].startswith(("   ", "OCOP-"))  # a new line, not half of one


async def test_polling_carries_on_through_zalo_errors(zalo_bot: ZaloBotUnderTest) -> None:
    zalo_bot.emulator.fail_next("getUpdates", 502, times=2)
    zalo_bot.emulator.fail_next("getUpdates", 429)
    user = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8400000000000000006")
    await user.say("/start")
    assert "1. 📝 Đăng ký sản phẩm mới" in user.text
    codes = [code for method, code, _params in zalo_bot.emulator.failures]
    assert codes[:3] == [502, 502, 429]


async def test_a_code_observed_as_blocked_marks_the_producer_unreachable(
    settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> None:
    """Zalo documents no "blocked" code; the one an operator saw is named in the settings."""
    zalo_emulator.blocked_error = (451, "The user blocked this bot")
    observed = zalo_settings(settings, zalo_emulator, zalo_blocked_codes=[451])
    bot = ZaloBotUnderTest(observed, engine, zalo_emulator)
    await bot.start()
    try:
        user = await certified(bot, engine, "8400000000000000007")
        zalo_emulator.blocked_chats.add(user.user_id)
        await bot.run_reminders()
        assert (await user_row(engine, user)).reachable is False
        zalo_emulator.blocked_chats.clear()
        await user.say("xin chao")  # writing again means they unblocked the bot
        assert (await user_row(engine, user)).reachable is True
    finally:
        await bot.stop()


async def test_an_unknown_refusal_is_logged_and_recorded_without_marking_anyone(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 (or any code nobody observed to mean "blocked") fails that message with Zalo's
    own words; the producer still gets the next one."""
    user = await certified(zalo_bot, engine, "8400000000000000008")
    zalo_bot.emulator.blocked_error = (403, "Forbidden: something Zalo did not explain")
    zalo_bot.emulator.blocked_chats.add(user.user_id)
    with caplog.at_level(logging.WARNING, logger="bot.channels.zalo_bot"):
        await zalo_bot.run_reminders()
    assert "something Zalo did not explain" in caplog.text and "403" in caplog.text
    assert (await user_row(engine, user)).reachable is True
    async with create_sessionmaker(engine)() as session:
        [failed] = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.chat_id == user.user_id)
            .where(OutboxMessage.key.like("reminder:%"))
        )
    assert failed.status == "failed" and "something Zalo did not explain" in (failed.error or "")
    zalo_bot.emulator.blocked_chats.clear()
    await user.say("xin chao")
    assert user.replies  # nothing was held back for them
