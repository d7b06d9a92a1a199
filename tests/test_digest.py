"""The daily digest: the right registrations for each official, at the right local time, once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import DIGEST_JOB
from tests.flows import answer_new_product
from tests.harness import BotUnderTest, Producer
from tests.test_officials import make_official

HCM = dt.timezone(dt.timedelta(hours=7))


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=HCM)


async def register(bot: BotUnderTest, user_id: int, commune: str, product: str) -> None:
    producer = Producer(bot, user_id=user_id)
    await answer_new_product(producer, commune=commune, product=product)
    await producer.tap("Gửi hồ sơ")


def digests_to(bot: BotUnderTest, chat_id: int) -> list[str]:
    return [
        m["text"] for m in bot.emulator.messages_to(chat_id) if "Bản tin OCOP" in (m["text"] or "")
    ]


async def next_digest(official: Producer) -> str:
    """The digest arrives through the outbox, shortly after the job queued it."""
    return await official.notified("Bản tin OCOP")


@pytest.mark.both_databases
async def test_an_official_with_two_communes_gets_exactly_their_new_registrations(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 6001, "21478", "21451")
    bot.clock.now = local(1, 6)
    await register(bot, 6101, "Sa Huỳnh", "Nước mắm Sa Huỳnh")
    await register(bot, 6102, "Trà Câu", "Tỏi Trà Câu")
    await register(bot, 6103, "Đức Phổ", "Bánh tráng Đức Phổ")

    bot.clock.now = local(1, 7, 31)
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    [digest] = digests_to(bot, official.user_id)
    assert "01/12/2026" in digest
    assert "Phường Sa Huỳnh" in digest or "Sa Huỳnh" in digest
    assert "Nước mắm Sa Huỳnh" in digest and "Tỏi Trà Câu" in digest
    assert "Bánh tráng Đức Phổ" not in digest  # another official's commune
    assert "Hồ sơ mới (2)" in digest
    assert "Năm 2026: 2 hồ sơ" in digest


async def test_the_digest_fires_at_the_local_time_and_never_twice(bot: BotUnderTest) -> None:
    official = await make_official(bot, 6201)
    bot.clock.now = local(2, 6)
    await register(bot, 6202, "Sa Huỳnh", "Mắm ruốc")

    bot.clock.now = local(2, 7, 29)  # one minute early (00:29 UTC)
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    assert digests_to(bot, official.user_id) == []

    bot.clock.now = local(2, 7, 30)
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    assert len(digests_to(bot, official.user_id)) == 1

    await bot.restart()  # the job is scheduled again; today's digest is on record
    bot.clock.now = local(2, 9)
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    assert len(digests_to(bot, official.user_id)) == 1

    # The next day lists only what came in since the last digest.
    bot.clock.now = local(2, 15)
    await register(bot, 6203, "Trà Câu", "Tỏi cô đơn")
    bot.clock.now = local(3, 7, 45)
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    digests = digests_to(bot, official.user_id)
    assert len(digests) == 2
    assert "Tỏi cô đơn" in digests[1] and "Mắm ruốc" not in digests[1].split("Năm 2026")[0]


async def test_a_digest_missed_while_the_bot_was_down_is_sent_when_it_returns(
    bot: BotUnderTest,
) -> None:
    official = await make_official(bot, 6301)
    await bot.stop()
    bot.clock.now = local(4, 11)  # the bot was down at 07:30
    await bot.start()
    await bot.run_job(DIGEST_JOB)
    await bot.drain()
    [digest] = digests_to(bot, official.user_id)
    assert "04/12/2026" in digest


async def test_digest_command_shows_the_digest_now(bot: BotUnderTest) -> None:
    # The scheduled digest not due yet, so that it cannot cover the registration first.
    bot.settings = bot.settings.model_copy(update={"ocop_digest_time": "23:00"})
    await bot.restart()
    official = await make_official(bot, 6401, "21478")
    await register(bot, 6402, "Sa Huỳnh", "Nước mắm nhĩ")
    await official.say("/bantin")
    assert "Đang chuẩn bị bản tin" in official.text  # at once; the digest follows
    preview = await official.notified("Bản tin OCOP")  # the only one: none is due yet
    assert "Nước mắm nhĩ" in preview


