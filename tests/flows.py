"""Story helpers: a producer walking through the registration form the usual way."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.registrations import Registration
from tests.harness import Producer


async def answer_new_product(
    producer: Producer,
    *,
    product: str = "Nước mắm cá cơm",
    commune: str = "Sa Huỳnh",
    owner: str = "Nguyễn Văn A",
    subject: str = "HTX Nước mắm Sa Huỳnh",
) -> None:
    """From /dangky to the summary, answering every question of a new product."""
    await producer.say("/dangky")
    assert "Ông/Bà muốn đăng ký gì?" in producer.text
    await producer.tap("Sản phẩm mới")
    assert "xã/phường nào" in producer.text
    await producer.tap(commune)
    assert "Tên sản phẩm là gì?" in producer.text
    await producer.say(product)
    await producer.tap("Thực phẩm")
    assert "hình thức nào" in producer.text
    await producer.tap("Hợp tác xã")
    await producer.say(subject)
    assert "Người đại diện" in producer.text
    await producer.say(owner)
    await producer.say("Thôn Thạnh Đức, phường Sa Huỳnh")
    assert "vị trí" in producer.text
    await producer.say("Bỏ qua")
    assert "Số điện thoại" in producer.text
    await producer.share_contact("+84905123456")
    await producer.tap("4 sao")
    assert "thương mại điện tử" in producer.text
    await producer.tap("Có")
    assert "Kiểm tra lại hồ sơ đăng ký" in producer.text


async def stored_registrations(engine: AsyncEngine) -> list[Registration]:
    from models.db import create_sessionmaker

    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(select(Registration).order_by(Registration.id))
        return list(rows)
