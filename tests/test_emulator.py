"""Tests of the local Telegram Bot API emulator, driven through python-telegram-bot's Bot."""

from __future__ import annotations

import asyncio
import html
import itertools
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from bot.emulator import Faults, Limits, TelegramEmulator
from bot.emulator.__main__ import _parse_args

USER = 1001


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator()
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture(autouse=True)
def _retry_after_as_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns (an error here) when RetryAfter holds int seconds, unless opted in."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


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


async def test_blocked_and_unknown_chats_fail_and_are_not_sent(
    client: Bot, emulator: TelegramEmulator
) -> None:
    emulator.faults = Faults(blocked_chats={USER}, bad_request_chats={2002})
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await client.send_message(USER, "hello")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await client.send_document(2002, b"x", filename="a.txt")
    await client.send_message(3003, "hello")
    assert [entry["chat_id"] for entry in emulator.sent] == [3003]
    assert [(m, code) for m, code, _ in emulator.failures] == [
        ("sendMessage", 403),
        ("sendDocument", 400),
    ]
    assert emulator.failures[0][2]["chat_id"] == USER
    assert emulator.injected == {"blocked": 1, "bad_request": 1}
    assert emulator.delivery_times(USER) == [] and len(emulator.delivery_times(3003)) == 1


async def test_injected_429_gives_retry_after(client: Bot, emulator: TelegramEmulator) -> None:
    emulator.faults = Faults(rate_429=1.0, retry_after=7)
    with pytest.raises(RetryAfter) as raised:
        await client.send_message(USER, "hello")
    assert raised.value.retry_after == timedelta(seconds=7)
    assert await client.get_me()  # only sends are affected
    assert emulator.sent == [] and [m for m, _ in emulator.calls][-2:] == ["sendMessage", "getMe"]
    assert emulator.failures == [("sendMessage", 429, {"chat_id": USER, "text": "hello"})]
    assert emulator.injected == {"429": 1} and emulator.throttled == 0


async def test_injected_500_is_a_network_error(client: Bot, emulator: TelegramEmulator) -> None:
    emulator.faults = Faults(rate_500=1.0)
    with pytest.raises(NetworkError, match="Internal Server Error") as raised:
        await client.send_photo(USER, b"\xff\xd8\xff\xe0")
    assert type(raised.value) is NetworkError  # not TimedOut, a NetworkError subclass
    assert emulator.sent == [] and emulator.failures[0][:2] == ("sendPhoto", 500)
    assert emulator.injected == {"500": 1}


async def test_injected_timeout_times_out_and_is_not_delivered(
    emulator: TelegramEmulator,
) -> None:
    emulator.faults = Faults(rate_timeout=1.0, timeout_seconds=30)
    request = HTTPXRequest(read_timeout=0.2)
    async with Bot(emulator.token, base_url=emulator.api_url, request=request) as client:
        with pytest.raises(TimedOut):
            await client.send_message(USER, "hello")
    assert emulator.sent == [] and emulator.delivery_times(USER) == []
    assert emulator.failures[0][:2] == ("sendMessage", 502)
    assert emulator.injected == {"timeout": 1}
    started = time.monotonic()
    await emulator.stop()  # releases the held request at once
    assert time.monotonic() - started < 0.5


async def test_held_request_answers_502_when_the_client_waits(
    client: Bot, emulator: TelegramEmulator
) -> None:
    emulator.faults = Faults(rate_timeout=1.0, timeout_seconds=0.05)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await client.send_message(USER, "hello")
    assert emulator.sent == []


async def test_per_chat_interval_throttles_the_second_send(
    client: Bot, emulator: TelegramEmulator
) -> None:
    emulator.limits = Limits(per_chat_interval=1.0)
    await client.send_message(USER, "one")
    with pytest.raises(RetryAfter) as raised:
        await client.send_message(USER, "two")
    assert raised.value.retry_after == timedelta(seconds=1)
    await client.send_message(USER + 1, "other chat")
    assert emulator.throttled == 1 and not emulator.injected
    assert emulator.texts_to(USER) == ["one"]
    assert emulator.failures == [("sendMessage", 429, {"chat_id": USER, "text": "two"})]
    assert emulator.min_interval_per_chat() is None  # no chat got two messages


async def test_overall_and_group_limits(client: Bot, emulator: TelegramEmulator) -> None:
    emulator.limits = Limits(overall_per_second=3)
    for chat_id in (1, 2, 3):
        await client.send_message(chat_id, "x")
    with pytest.raises(RetryAfter):
        await client.send_message(4, "x")
    assert emulator.max_in_window(1.0) == 3 and emulator.throttled == 1

    emulator.limits = Limits(group_per_minute=2)
    await client.send_message(-100, "a")
    await client.send_message(-100, "b")
    with pytest.raises(RetryAfter) as raised:
        await client.send_message(-100, "c")
    wait = raised.value.retry_after
    assert isinstance(wait, timedelta) and timedelta(seconds=59) <= wait <= timedelta(seconds=60)
    await client.send_message(-200, "other group")
    assert emulator.texts_to(-100) == ["a", "b"] and emulator.throttled == 2


async def test_verification_helpers(client: Bot, emulator: TelegramEmulator) -> None:
    assert emulator.min_interval_per_chat() is None and emulator.max_in_window() == 0
    before = time.monotonic()
    await client.send_message(1, "a1")
    await client.send_message(2, "b1")
    await client.send_document(1, b"data", filename="a.csv", caption="a2")
    await client.send_message(1, "a3")
    after = time.monotonic()
    with pytest.raises(BadRequest):
        await client.send_message(2, "x" * 4097)  # failed sends are not deliveries

    times = emulator.delivery_times(1)
    assert len(times) == 3 and before <= times[0] < times[1] < times[2] <= after
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert emulator.min_interval_per_chat() == min(gaps)
    assert emulator.texts_to(1) == ["a1", "a2", "a3"] and emulator.texts_to(2) == ["b1"]
    assert emulator.max_in_window(1.0) == 4
    assert emulator.max_in_window(times[1] - times[0]) < 4
    assert emulator.failures[-1][:2] == ("sendMessage", 400)
    with pytest.raises(ValueError, match="positive"):
        emulator.max_in_window(0)


async def test_seeded_faults_are_deterministic(client: Bot, emulator: TelegramEmulator) -> None:
    async def outcomes() -> list[str]:
        emulator.faults = Faults(rate_500=0.3, rate_429=0.3, seed=42)  # a new object reseeds
        seen = []
        for n in range(20):
            try:
                await client.send_message(USER, f"m{n}")
                seen.append("ok")
            except TelegramError as exc:
                seen.append(type(exc).__name__)
        return seen

    first = await outcomes()
    assert await outcomes() == first
    assert {"ok", "RetryAfter", "NetworkError"} <= set(first)
    assert first.count("ok") == len(emulator.sent) // 2


def test_fault_and_limit_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="add up"):
        Faults(rate_429=0.6, rate_500=0.6)
    with pytest.raises(ValueError, match="retry_after"):
        Faults(retry_after=0)
    with pytest.raises(ValueError, match="unknown"):
        Limits.from_json({"per_second": 30})
    args = _parse_args(
        ["--faults", '{"rate_429": 0.5, "blocked_chats": [5], "seed": 1}', "--limits", "{}"]
    )
    assert args.faults == Faults(rate_429=0.5, blocked_chats={5}, seed=1)
    assert args.limits == Limits()


async def test_faults_limits_and_stats_over_http(client: Bot, emulator: TelegramEmulator) -> None:
    base = f"http://{emulator.host}:{emulator.port}/_emulator"
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{base}/faults", json={"blocked_chats": [USER]})
        assert answer.json()["result"]["blocked_chats"] == [USER]
        answer = await http.post(f"{base}/limits", json={"per_chat_interval": 1.0})
        assert answer.json()["result"]["per_chat_interval"] == 1.0
        assert (await http.post(f"{base}/limits", json={"bad": 1})).status_code == 400
        with pytest.raises(Forbidden):
            await client.send_message(USER, "x")
        await client.send_message(2, "x")
        with pytest.raises(RetryAfter):
            await client.send_message(2, "y")
        stats = (await http.get(f"{base}/stats")).json()["result"]
        failures = (await http.get(f"{base}/failures")).json()["result"]
    assert stats["sent"] == 1 and stats["throttled"] == 1 and stats["injected"] == {"blocked": 1}
    assert stats["max_in_window"] == 1 and stats["min_interval_per_chat"] is None
    assert [f["error_code"] for f in failures] == [403, 429]
