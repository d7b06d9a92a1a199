"""Consent before personal data: the notice, agreeing, refusing, a new notice, withdrawing."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import consent
from models.consent import ConsentRecord
from models.db import create_sessionmaker
from models.registrations import Subject
from models.users import User
from tests.harness import BotUnderTest, Producer
from tests.personal_data import found_everywhere
from tests.test_reminders import certified_producer
from tests.zalo_harness import ZaloBotUnderTest, ZaloUser, zalo_bot, zalo_emulator

__all__ = ["zalo_bot", "zalo_emulator"]  # fixtures

NOTICE = "thông tin cá nhân"
FIRST_QUESTION = "Ông/Bà muốn đăng ký gì?"


async def records(engine: AsyncEngine, user_id: int) -> list[tuple[int, str]]:
    async with create_sessionmaker(engine)() as session:
        user = await session.scalar(select(User).where(User.channel_user_id == str(user_id)))
        assert user is not None
        rows = await session.scalars(select(ConsentRecord).where(ConsentRecord.user_id == user.id))
        return [(row.notice_version, row.decision) for row in rows]


@pytest.mark.both_databases
async def test_the_notice_comes_before_the_first_personal_question(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=13001, consents=False)
    await producer.say("/dangky")
    assert NOTICE in producer.text and FIRST_QUESTION not in producer.text
    for part in ("Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi", "90 ngày", "/xoadulieu",
                 "/dulieu", "/rutlai", "cán bộ OCOP của xã/phường"):
        assert part in producer.text
    assert producer.buttons() == ["✅ Đồng ý", "Không đồng ý"]

    await producer.tap("Đồng ý")
    assert FIRST_QUESTION in producer.text
    assert await records(engine, 13001) == [(consent.NOTICE_VERSION, "granted")]
    async with create_sessionmaker(engine)() as session:
        stored = await session.scalar(select(ConsentRecord))
    assert stored is not None and stored.at == bot.clock.now


async def test_a_person_who_refuses_can_read_help_and_nothing_about_them_is_kept(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=13011, first_name="Trần Thị Bưởi", consents=False)
    await producer.say("/start")
    await producer.tap("Đăng ký sản phẩm mới")
    assert NOTICE in producer.text
    await producer.tap("Không đồng ý")
    assert "không lưu thông tin cá nhân" in producer.text
    await producer.say("/help")
    assert "Hướng dẫn sử dụng" in producer.text
    await producer.say("Nguyễn Văn Bưởi, thôn Thạnh Đức")  # typed anyway: not a form
    await producer.share_contact("+84905111222")
    assert "Sản phẩm mới" not in producer.text  # no form was started behind the notice

    assert await found_everywhere(engine, ["Bưởi", "905111222", "Thạnh Đức"]) == []
    async with create_sessionmaker(engine)() as session:
        user = await session.scalar(select(User).where(User.channel_user_id == "13011"))
    assert user is not None
    assert (user.display_name, user.username, user.phone) == ("", None, None)
    assert await records(engine, 13011) == [(consent.NOTICE_VERSION, "refused")]


async def test_a_new_notice_version_is_asked_again(
    bot: BotUnderTest, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = Producer(bot, user_id=13021, consents=False)
    await producer.say("/dangky")
    await producer.tap("Đồng ý")
    await producer.say("/huy")
    await producer.say("/dangky")
    assert FIRST_QUESTION in producer.text  # agreed to this version already
    await producer.say("/huy")

    monkeypatch.setattr(consent, "NOTICE_VERSION", consent.NOTICE_VERSION + 1)
    await producer.say("/dangky")
    assert NOTICE in producer.text and FIRST_QUESTION not in producer.text
    await producer.tap("Đồng ý")
    assert FIRST_QUESTION in producer.text
    versions = await records(engine, 13021)
    assert versions == [(1, "granted"), (2, "granted")]


async def test_withdrawing_stops_reminders_and_offers_deletion(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 13031)
    await producer.say("/dangky")  # agrees to the notice (the harness taps "Đồng ý")
    await producer.say("Nước mắm")  # an answer that is personal-ish and now in the form
    await producer.say("/rutlai")
    assert "Đã rút lại sự đồng ý" in producer.text
    assert "🗑 Xoá dữ liệu của tôi" in producer.buttons()
    async with create_sessionmaker(engine)() as session:
        subject = await session.scalar(select(Subject))
        user = await session.scalar(select(User).where(User.channel_user_id == "13031"))
    assert subject is not None and subject.owner_user_id is None  # no more reminders
    assert user is not None and user.consent_version is None
    assert await records(engine, 13031) == [(1, "granted"), (1, "withdrawn")]

    producer.consents = False
    await producer.say("/dangky")
    assert NOTICE in producer.text  # asked again before anything personal


async def test_a_zalo_producer_is_asked_too_and_answers_with_a_number(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    user = ZaloUser(zalo_bot.emulator, zalo_bot.handled, "8100000000000013041", consents=False)
    await user.say("dang ky")
    assert NOTICE in user.text and FIRST_QUESTION not in user.text
    await user.say(user.number("Không đồng ý"))
    assert "không lưu thông tin cá nhân" in user.text
    await user.say("dang ky")
    await user.say(user.number("Đồng ý"))
    assert FIRST_QUESTION in user.text
