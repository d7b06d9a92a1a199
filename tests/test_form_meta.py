"""What a form was started for (the certificate a re-evaluation renews, the registration a
review decides or a producer completes) is kept beside the answers, and survives a restart
(issue 11, item 5)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.jobs import HOUSEKEEPING_JOB
from models.conversations import Conversation
from models.db import create_sessionmaker
from models.domain import RegistrationStatus
from tests.flows import answer_new_product, stored_registrations
from tests.harness import BotUnderTest, Producer
from tests.test_officials import make_official
from tests.test_reminders import before_expiry, certified_producer, remind


async def _stored(engine: AsyncEngine, user_id: int) -> Conversation:
    async with create_sessionmaker(engine)() as session:
        conversation = await session.get(Conversation, ("telegram", str(user_id)))
    assert conversation is not None
    return conversation


def _hidden(conversation: Conversation) -> set[str]:
    return {key for key in conversation.answers if key.startswith("_")}


async def test_a_re_evaluation_left_at_a_restart_still_renews_its_certificate(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await certified_producer(bot, engine, 8101)
    await remind(bot, before_expiry(180))
    await producer.tap("Đăng ký đánh giá lại")
    stored = await _stored(engine, 8101)
    assert _hidden(stored) == set()  # the answers are the form's answers only
    assert stored.meta is not None and stored.meta["certificate"] is not None

    await bot.restart()
    await producer.say("/dangky")  # where it stopped
    await producer.say("Bỏ qua")
    await producer.say("0905 123 456")
    await producer.tap("Nâng hạng 4 sao lên 5 sao")
    await producer.tap("Không")
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.certificate_id == stored.meta["certificate"]
    assert (await _stored(engine, 8101)).meta is None  # finished: nothing left over


async def test_a_return_and_its_completion_left_at_restarts_act_on_the_right_registration(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 8201, "21478")
    producer = Producer(bot, user_id=8202)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)

    await official.say("/pending")
    await official.tap("Trả lại")
    asked = await _stored(engine, 8201)
    assert asked.answers == {}
    assert asked.meta == {"registration": registration.id, "status": "returned"}
    await bot.restart()
    await official.say("Thiếu giấy phép kinh doanh")
    await producer.notified("cần bổ sung")
    assert (await _stored(engine, 8201)).meta is None

    await producer.tap("Bổ sung và nộp lại")
    completing = await _stored(engine, 8202)
    assert _hidden(completing) == set()
    assert completing.meta == {"registration": registration.id}
    await bot.restart()
    await producer.tap("Gửi hồ sơ")
    assert "OCOP-2026-0001" in producer.text  # the same registration, sent again
    [again] = await stored_registrations(engine)
    assert again.status is RegistrationStatus.SUBMITTED


async def _second_form(bot: BotUnderTest, engine: AsyncEngine, user_id: int) -> Producer:
    """A producer who registered once and starts again: the form offers the owner again."""
    producer = Producer(bot, user_id=user_id)
    await answer_new_product(producer, owner="Nguyễn Văn A")
    await producer.tap("Gửi hồ sơ")
    await producer.tap("Đăng ký sản phẩm khác")
    started = await _stored(engine, user_id)
    assert started.meta is not None and started.meta["previous"]["owner"] == "Nguyễn Văn A"
    assert _hidden(started) == set()
    return producer


async def test_an_abandoned_form_forgets_the_details_it_offered_to_reuse(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    """The last registration's owner and phone, offered again by a second form, are personal
    data: housekeeping empties a form left for 90 days, and what it was started with too."""
    await _second_form(bot, engine, 8301)

    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            update(Conversation)
            .where(Conversation.chat_id == "8301")
            .values(updated_at=bot.clock() - dt.timedelta(days=91))
        )
    await bot.run_job(HOUSEKEEPING_JOB)
    emptied = await _stored(engine, 8301)
    assert (emptied.flow, emptied.answers, emptied.meta) == (None, {}, None)


async def test_deleting_ones_data_mid_form_forgets_the_details_it_offered_to_reuse(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = await _second_form(bot, engine, 8401)
    await producer.say("/xoadulieu")
    await producer.tap("Có, xoá")
    assert "Đã xoá thông tin cá nhân" in producer.text
    erased = await _stored(engine, 8401)
    assert (erased.flow, erased.answers, erased.meta) == (None, {}, None)
