"""One process serves Telegram and Zalo: producers on both register at the same time, officials
on Telegram see them all, and a Zalo producer hears the outcome on Zalo."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.zalo_bot import ZaloBot
from bot.emulator import TelegramEmulator
from bot.emulator.zalo import ZaloEmulator
from bot.settings import Settings
from handlers.reports.export import ExportFilter, write_registration_xlsx
from models.admin_units import Area
from models.db import create_sessionmaker
from tests.flows import answer_new_product, stored_registrations
from tests.harness import ADMIN_ID, BotUnderTest, Producer
from tests.zalo_harness import (
    Handled,
    ZaloUser,
    answer_by_numbers,
    zalo_emulator,
    zalo_settings,
)

__all__ = ["zalo_emulator"]  # fixtures


@pytest.fixture
async def both(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator, zalo_emulator: ZaloEmulator
) -> AsyncIterator[BotUnderTest]:
    """The PTB Application with both tokens set, as `ocop-bot run` builds it."""
    running = BotUnderTest(zalo_settings(settings, zalo_emulator), engine, emulator)
    await running.start()
    yield running
    await running.stop()


def zalo_of(bot: BotUnderTest) -> ZaloBot:
    assert bot.application is not None
    zalo = bot.application.bot_data["zalo"]
    assert isinstance(zalo, ZaloBot)
    return zalo


async def export_rows(engine: AsyncEngine, area: Area) -> list[tuple[object, ...]]:
    """The official table (sheet 1) of 2026, as an admin's /export writes it."""
    async with create_sessionmaker(engine, read_only=True)() as session:
        buffer = io.BytesIO()
        await write_registration_xlsx(session, area, ExportFilter(2026), buffer)
    sheet = openpyxl.load_workbook(buffer).worksheets[0]
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


@pytest.mark.both_databases
async def test_telegram_and_zalo_producers_register_at_the_same_time(
    both: BotUnderTest, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> None:
    on_telegram = Producer(both, user_id=7001)
    on_zalo = ZaloUser(zalo_emulator, Handled().attach(both.runtime), "8200000000000000001")

    async def telegram_story() -> None:
        await answer_new_product(on_telegram, product="Nước mắm cá cơm")
        await on_telegram.tap("Gửi hồ sơ")
        assert "Mã hồ sơ" in on_telegram.text

    async def zalo_story() -> None:
        await answer_by_numbers(on_zalo, product="Mắm ruốc Sa Huỳnh")
        await on_zalo.choose("Gửi hồ sơ")
        assert "Mã hồ sơ" in on_zalo.text

    await asyncio.gather(telegram_story(), zalo_story())

    registrations = await stored_registrations(engine)
    assert sorted((r.channel, r.product_name) for r in registrations) == [
        ("telegram", "Nước mắm cá cơm"),
        ("zalo", "Mắm ruốc Sa Huỳnh"),
    ]
    rows = await export_rows(engine, both.services.area)
    products = [row[2] for row in rows]
    assert "Nước mắm cá cơm" in products and "Mắm ruốc Sa Huỳnh" in products

    # An official on Telegram accepts the Zalo registration; its producer is told on Zalo.
    [from_zalo] = [r for r in registrations if r.channel == "zalo"]
    admin = Producer(both, user_id=ADMIN_ID, first_name="Admin")
    await admin.say("/pending")
    card = next(
        m for m in both.emulator.messages_to(ADMIN_ID) if "Mắm ruốc" in (m.get("text") or "")
    )
    await admin.press(card["message_id"], f"rv:acc:{from_zalo.id}")
    told = await on_zalo.notified("đã được tiếp nhận")
    assert from_zalo.code in told and "<b>" not in told


async def test_the_same_id_on_two_channels_is_two_people(
    both: BotUnderTest, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> None:
    """Conversations and users are kept per channel: one person's form is not the other's."""
    on_telegram = Producer(both, user_id=7002)
    on_zalo = ZaloUser(zalo_emulator, Handled().attach(both.runtime), "7002")
    await on_telegram.say("/dangky")
    await on_telegram.tap("Sản phẩm mới")
    assert "xã/phường nào" in on_telegram.text
    await on_zalo.say("Sa Huynh")  # no form here: not an answer to Telegram's question
    assert "chưa hiểu" in on_zalo.text
    await on_zalo.say("/language")
    await on_zalo.choose("English")
    assert "Language changed to English." in on_zalo.text
    await on_telegram.tap("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in on_telegram.text  # still in Vietnamese
