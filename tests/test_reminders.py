"""Certificate-expiry reminders: on their days, once each, in the producer's language, with a
button that starts the re-evaluation; none after it is registered; none lost to a restart."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import REMINDER_JOB
from models.db import create_sessionmaker
from models.domain import RegistrationKind, SubjectType, Target
from models.users import User
from tests import factories
from tests.flows import stored_registrations
from tests.harness import BotUnderTest, Producer
from tests.test_officials import make_official

ISSUED = dt.date(2024, 1, 15)  # expires 15/01/2027
HCM = dt.timezone(dt.timedelta(hours=7))


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=HCM)


def before_expiry(days: int) -> dt.date:
    return dt.date(2027, 1, 15) - dt.timedelta(days=days)


async def certified_producer(
    bot: BotUnderTest,
    engine: AsyncEngine,
    user_id: int,
    *,
    phone: str | None = None,
    linked: bool = True,
) -> Producer:
    """A producer whose fish sauce got 4 stars on 15/01/2024 (the certificate is on file)."""
    producer = Producer(bot, user_id=user_id)
    await producer.say("/start")
    async with create_sessionmaker(engine)() as session, session.begin():
        owner = await session.scalar(select(User).where(User.channel_user_id == str(user_id)))
        subject = await factories.subject(session, "HTX Nước mắm Sa Huỳnh")
        subject.representative, subject.phone = "Nguyễn Văn A", phone
        subject.owner_user_id = owner.id if (owner and linked) else None
        item = await factories.product(session, subject, "Nước mắm cá cơm", "21478")
        factories.certificate(session, item, 4, ISSUED)
    return producer


async def remind(bot: BotUnderTest, day: dt.date) -> None:
    bot.clock.now = at(day)
    await bot.run_job(REMINDER_JOB)
    await bot.drain()


def reminders_to(producer: Producer) -> list[str]:
    return [
        m["text"]
        for m in producer.emulator.messages_to(producer.user_id)
        if "15/01/2027" in (m["text"] or "")
    ]


@pytest.mark.both_databases
async def test_reminders_walk_the_calendar_once_each_and_stop_after_re_evaluation(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 8001)

    await remind(bot, before_expiry(181))
    assert reminders_to(producer) == []

    await remind(bot, before_expiry(180))
    await remind(bot, before_expiry(180))  # the job runs every minute: still one reminder
    await remind(bot, before_expiry(150))
    [first] = reminders_to(producer)
    assert "Nước mắm cá cơm" in first and "4 sao" in first and "còn 180 ngày" in first

    await remind(bot, before_expiry(90))
    assert "còn 90 ngày" in reminders_to(producer)[-1]
    assert len(reminders_to(producer)) == 2

    # One tap on the reminder: the re-evaluation form with what is on file filled in.
    await producer.tap("Đăng ký đánh giá lại")
    assert "thông tin đã có được điền sẵn" in producer.text
    assert "vị trí" in producer.text  # product, owner, commune, star... are not asked again
    await producer.say("Bỏ qua")
    assert "Số điện thoại" in producer.text  # no phone on file
    await producer.say("0905 123 456")
    await producer.tap("Nâng hạng 4 sao lên 5 sao")
    await producer.tap("Không")
    for prefilled in ("Nước mắm cá cơm", "Phường Sa Huỳnh", "4 sao", "15/01/2024", "Nguyễn Văn A"):
        assert prefilled in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.kind is RegistrationKind.REEVALUATION
    assert registration.target is Target.UP_4_TO_5
    assert registration.certificate_id is not None
    assert registration.subject_type is SubjectType.COOPERATIVE

    await remind(bot, before_expiry(60))
    await remind(bot, before_expiry(0))
    assert len(reminders_to(producer)) == 2  # no reminder after the re-evaluation


async def test_a_reminder_in_english_for_an_english_speaker(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 8002)
    await producer.say("/language")
    await producer.tap("English")
    await remind(bot, before_expiry(30))
    told = await producer.notified("15/01/2027")
    assert "30 days left" in told and "4 stars" in told
    assert "🔁 Register re-evaluation" in producer.buttons()


async def test_the_expiry_day_reminder_says_today(bot: BotUnderTest, engine: AsyncEngine) -> None:
    producer = await certified_producer(bot, engine, 8003)
    await remind(bot, before_expiry(0))
    assert "hết hạn <b>hôm nay</b>" in await producer.notified("15/01/2027")


async def test_a_reminder_day_passed_while_the_bot_was_down_is_sent_once_on_return(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 8004)
    await remind(bot, before_expiry(90))
    await bot.stop()
    bot.clock.now = at(before_expiry(58))  # the 60-day reminder fell while the bot was down
    await bot.start()
    await remind(bot, before_expiry(58))
    await remind(bot, before_expiry(57))
    texts = reminders_to(producer)
    assert len(texts) == 2 and "còn 58 ngày" in texts[-1]


async def test_sharing_a_contact_links_imported_certificates(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 8005, phone="+84905777888", linked=False)
    await remind(bot, before_expiry(90))
    assert reminders_to(producer) == []  # nobody to remind: the certificate has no owner yet

    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say("Mắm ruốc")
    await producer.tap("Thực phẩm")
    await producer.tap("Hộ sản xuất")
    await producer.say("Nguyễn Văn A")
    await producer.say("Thôn Long Thạnh")
    await producer.say("Bỏ qua")
    await producer.share_contact("+84905777888")
    assert "đã được gắn với tài khoản" in producer.text and "Nước mắm cá cơm" in producer.text

    await remind(bot, before_expiry(89))
    assert "còn 89 ngày" in reminders_to(producer)[-1]


async def test_officials_see_who_was_reminded_and_are_alerted_of_expiry(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 8101, "21478")
    await certified_producer(bot, engine, 8006)
    await remind(bot, before_expiry(90))
    bot.clock.now = at(before_expiry(85))
    await official.say("/nhachan")
    assert "Nước mắm cá cơm" in official.text and "đã nhắc: 90 ngày" in official.text

    await remind(bot, before_expiry(-1))  # expired yesterday, nobody registered a re-evaluation
    alert = await official.notified("đã hết hạn ngày 15/01/2027")
    assert "Nguyễn Văn A" in alert and "Sa Huỳnh" in alert


async def test_an_officials_claim_link_gives_a_certificate_to_its_producer(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 8201, "21478")
    producer = await certified_producer(bot, engine, 8202, linked=False)
    bot.clock.now = at(before_expiry(100))
    await official.say("/nhachan")
    assert "chưa gắn tài khoản chủ thể" in official.text
    number = official.text.split("/lienket ")[1].split()[0]
    await official.say(f"/lienket {number}")
    code = official.text.split("?start=")[1].split()[0]

    await producer.say(f"/start {code}")
    assert "đã được gắn với tài khoản" in producer.text and "Nước mắm cá cơm" in producer.text
    await remind(bot, before_expiry(90))
    assert "còn 90 ngày" in reminders_to(producer)[-1]
