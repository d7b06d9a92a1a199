"""Nothing is lost or doubled: restarts mid-conversation and updates delivered twice."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.flows import answer_new_product, stored_registrations
from tests.harness import BotUnderTest, Producer


async def test_a_restart_mid_conversation_continues_at_the_same_step(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=3001)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.say("Phổ Phong")
    await producer.say("Nước mắm Tân Phong")
    await producer.tap("Thực phẩm")
    await producer.tap("Tổ hợp tác")
    await producer.say("THT Nước mắm Tân Phong")
    assert "Người đại diện" in producer.text

    await bot.restart()  # a new Application and a new process state; the database stays

    await producer.say("Huỳnh Văn Ba")
    assert "Địa chỉ sản xuất" in producer.text
    await producer.say("Thôn Tân Phong")
    await producer.say("Bỏ qua")
    await producer.say("0905 123 456")
    await producer.tap("3 sao")
    await producer.tap("Không")
    for kept in ("Nước mắm Tân Phong", "Tổ hợp tác", "THT Nước mắm Tân Phong", "Huỳnh Văn Ba"):
        assert kept in producer.text
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.legacy_commune is not None
    assert registration.owner_name == "Huỳnh Văn Ba"


async def test_the_same_update_delivered_twice_registers_once(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=3002)
    await answer_new_product(producer)
    submit = producer.emulator.press_button(3002, "Gửi hồ sơ")
    first = await bot.deliver(submit)
    assert "OCOP-2026-0001" in "".join(m.get("text") or "" for m in first)

    again = await producer.redeliver(submit)
    assert again == []  # handled once: no second receipt, no error message
    assert [r.code for r in await stored_registrations(engine)] == ["OCOP-2026-0001"]


async def test_a_text_answer_delivered_twice_is_taken_once(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=3003)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    update = producer.emulator.send_text(3003, "Nước mắm")
    await bot.deliver(update)
    assert await producer.redeliver(update) == []
    await producer.say("/dangky")  # where are we? still at the product group question
    assert "Sản phẩm thuộc nhóm nào?" in producer.text
