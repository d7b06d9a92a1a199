"""Tests of the local Telegram Bot API emulator, driven through python-telegram-bot's Bot."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, InvalidToken
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.emulator import TelegramEmulator

USER = 1001


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator()
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def client(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    async with Bot(
        emulator.token, base_url=emulator.api_url, base_file_url=emulator.file_url
    ) as tg_bot:
        yield tg_bot


async def test_get_me(client: Bot) -> None:
    me = await client.get_me()
    assert me.is_bot
    assert me.username == "ocop_test_bot"
    assert me.id == 123456


async def test_inline_keyboard_press_button_gives_callback_query(
    client: Bot, emulator: TelegramEmulator
) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Đăng ký mới", callback_data="new"),
                InlineKeyboardButton("Huỷ", callback_data="cancel"),
            ]
        ]
    )
    sent = await client.send_message(USER, "Chọn:", reply_markup=keyboard)
    entry = emulator.last_message(USER)
    assert entry["text"] == "Chọn:"
    assert entry["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "cancel"

    emulator.press_button(USER, "Đăng ký")
    updates = await client.get_updates()
    assert len(updates) == 1
    query = updates[0].callback_query
    assert query is not None and query.data == "new"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await query.answer("ok")
    assert emulator.callback_answers[-1]["text"] == "ok"

    with pytest.raises(AssertionError, match="Huỷ"):
        emulator.press_button(USER, "nothing like this")


async def test_long_poll_returns_when_user_sends_text(
    client: Bot, emulator: TelegramEmulator
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(client.get_updates(timeout=30))
    await emulator.wait_for_call("getUpdates")
    assert not poll.done()
    emulator.send_text(USER, "/start ref", first_name="Lan")
    updates = await asyncio.wait_for(poll, 5)
    assert loop.time() - started < 5
    message = updates[0].message
    assert message is not None and message.text == "/start ref"
    assert message.from_user is not None and message.from_user.first_name == "Lan"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6

    await client.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    await emulator.wait_idle(timeout=1)
    assert emulator.pending_updates == 0


async def test_duplicate_delivery_via_enqueue_raw(client: Bot, emulator: TelegramEmulator) -> None:
    update = emulator.send_text(USER, "hello")
    first = await client.get_updates()
    emulator.enqueue_raw(update)
    again = await client.get_updates(offset=first[-1].update_id + 1)
    assert [u.update_id for u in again] == [update["update_id"]]


async def test_html_must_be_well_formed(client: Bot, emulator: TelegramEmulator) -> None:
    await client.send_message(USER, "<b>Tên:</b> Cá &amp; mắm &lt;3&gt; >", parse_mode="HTML")
    typed = html.escape('Tom & Jerry\'s <b>"shop"</b>')
    await client.send_message(USER, f"<i>{typed}</i>", parse_mode="HTML")
    for bad in ("Cá & mắm", "a < b", "<b>open", "<foo>x</foo>", "<b><i>x</b></i>"):
        with pytest.raises(BadRequest, match="parse entities"):
            await client.send_message(USER, bad, parse_mode="HTML")
    assert len(emulator.messages_to(USER)) == 2


async def test_text_limits(client: Bot) -> None:
    await client.send_message(USER, "x" * 4096)
    with pytest.raises(BadRequest, match="too long"):
        await client.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match="empty"):
        await client.send_message(USER, "   ")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="y" * 65)]])
        await client.send_message(USER, "ok", reply_markup=keyboard)


async def test_edit_and_delete(client: Bot, emulator: TelegramEmulator) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])
    sent = await client.send_message(USER, "one", reply_markup=keyboard)
    await client.edit_message_text("two", chat_id=USER, message_id=sent.message_id)
    entry = emulator.last_message(USER)
    assert (entry["text"], entry["reply_markup"], entry["edited"]) == ("two", None, True)
    with pytest.raises(BadRequest, match="not modified"):
        await client.edit_message_text("two", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="not found"):
        await client.edit_message_text("x", chat_id=USER, message_id=999)
    assert await client.delete_message(USER, sent.message_id)
    assert emulator.last_message(USER)["deleted"]


async def test_documents_both_ways(client: Bot, emulator: TelegramEmulator) -> None:
    message = await client.send_document(USER, b"a,b\n1,2\n", filename="export.csv", caption="CSV")
    assert message.document is not None and message.document.file_name == "export.csv"
    entry = emulator.last_message(USER)
    assert entry["document"] == {"file_name": "export.csv", "content": b"a,b\n1,2\n"}
    assert entry["caption"] == "CSV"

    emulator.send_document(USER, "list.xlsx", b"PK\x03\x04data")
    updates = await client.get_updates()
    document = updates[-1].message.document if updates[-1].message else None
    assert document is not None and document.file_name == "list.xlsx"
    file = await document.get_file()
    assert bytes(await file.download_as_bytearray()) == b"PK\x03\x04data"


async def test_wrong_token_is_rejected(emulator: TelegramEmulator) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=emulator.api_url):
            pass


async def test_application_polls_and_replies(emulator: TelegramEmulator) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
        await context.bot.send_message(update.effective_chat.id, "Hi?", reply_markup=keyboard)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text(f"You said {query.data}")

    app = (
        Application.builder()
        .token(emulator.token)
        .base_url(emulator.api_url)
        .base_file_url(emulator.file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=5)
        emulator.send_text(USER, "/start")
        await emulator.wait_for_messages(USER, 1)
        emulator.press_button(USER, "Yes")
        await emulator.wait_for_call("editMessageText")
        await emulator.wait_idle(quiet=0.05)
        await app.updater.stop()
        await app.stop()
    assert emulator.last_message(USER)["text"] == "You said yes"
    assert emulator.pending_updates == 0


async def test_stop_releases_pending_long_poll() -> None:
    emulator = TelegramEmulator()
    await emulator.start()
    async with Bot(emulator.token, base_url=emulator.api_url) as client:
        poll = asyncio.create_task(client.get_updates(timeout=30))
        await emulator.wait_for_call("getUpdates")
        await asyncio.wait_for(emulator.stop(), 5)
        assert not await asyncio.wait_for(poll, 5)
