"""The idle-memory benchmark drives the real bot: its seeded forms take a real answer."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from telegram import Update
from telegram.request import RequestData

from bench.local_api import BOT_USER, LocalBotApi, text_update
from bench.memory import FIRST_CHAT, PRODUCT, Driver, seed
from bot.app import build_application, start, stop
from bot.channels.telegram import to_event
from bot.emulator import TelegramEmulator
from bot.settings import Settings
from handlers.events import EventKind
from models.conversations import Conversation
from models.db import create_engine, create_sessionmaker
from models.outbox import Pacing


async def test_local_api_answers_without_keeping_messages() -> None:
    api = LocalBotApi()
    status, body = await api.do_request("http://x/bot1:A/getMe", "POST")
    assert status == 200 and json.loads(body)["result"] == BOT_USER
    status, body = await api.do_request("http://x/bot1:A/sendMessage", "POST", RequestData([]))
    assert json.loads(body)["ok"] and api.sent == 1


def test_text_update_is_a_private_command() -> None:
    update = Update.de_json(text_update(7, 42, "/dangky"), None)
    event = to_event(update)
    assert event is not None and event.kind is EventKind.COMMAND and event.command == "dangky"


async def test_a_seeded_form_takes_the_answer(tmp_path: Path, emulator: TelegramEmulator) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/memory.db"
    chats = [FIRST_CHAT, FIRST_CHAT + 1]
    await seed(url, chats)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=emulator.token,
        telegram_api_url=emulator.api_url,
        database_url=url,
    )
    request = LocalBotApi()
    application = build_application(
        settings, request=request, pacing=Pacing(1_000_000, private_interval=0.0)
    )
    await start(application)
    try:
        driver = Driver(application)
        for chat in chats:
            await driver.say(chat, PRODUCT)
    finally:
        await stop(application)
    assert request.sent >= len(chats)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            forms = list(await session.scalars(select(Conversation)))
    finally:
        await engine.dispose()
    assert {form.step for form in forms} == {"group"}
    assert all(form.answers["product"] == PRODUCT for form in forms)
