"""Contract of `bot.channels.telegram.api_call`, the one Bot API call path of replies, button
answers and polling: it uses PTB's private `RequestParameter` to fill a public `RequestData`, so
these tests pin what the Bot API receives and what the caller gets back, over HTTP against the
emulator, through PTB's real HTTPXRequest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import Bot
from telegram.error import BadRequest, RetryAfter

from bot.channels.telegram import api_call
from bot.emulator import Faults, TelegramEmulator

USER = 1001


@pytest.fixture(autouse=True)
def _retry_after_as_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def client(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    async with Bot(emulator.token, base_url=emulator.api_url) as tg_bot:
        yield tg_bot


async def test_a_message_arrives_with_its_markup_and_its_answer_is_json(
    client: Bot, emulator: TelegramEmulator
) -> None:
    keyboard = {"inline_keyboard": [[{"text": "Đồng ý", "callback_data": "c:1"}]]}
    answer = await api_call(
        client,
        "sendMessage",
        chat_id=USER,
        text="<b>Câu 1</b> &amp; tiếp",
        parse_mode="HTML",
        reply_markup=keyboard,
        disable_notification=None,  # left out, not sent as "None"
    )
    assert isinstance(answer, dict) and isinstance(answer["message_id"], int)
    sent = emulator.last_message(USER)
    assert sent["text"] == "<b>Câu 1</b> &amp; tiếp"
    assert sent["reply_markup"] == keyboard
    method, params = emulator.calls[-1]
    assert method == "sendMessage" and params["parse_mode"] == "HTML"
    assert "disable_notification" not in params


async def test_get_updates_confirms_by_offset_and_takes_a_list_parameter(
    client: Bot, emulator: TelegramEmulator
) -> None:
    first = emulator.send_text(USER, "một")
    emulator.send_text(USER, "hai")
    got = await api_call(
        client, "getUpdates", read_timeout=5, timeout=0, allowed_updates=["message"]
    )
    assert [u["message"]["text"] for u in got] == ["một", "hai"]
    again = await api_call(client, "getUpdates", offset=first["update_id"] + 1, timeout=0)
    assert [u["message"]["text"] for u in again] == ["hai"]


async def test_errors_are_ptbs_own(client: Bot, emulator: TelegramEmulator) -> None:
    with pytest.raises(BadRequest):
        await api_call(client, "sendMessage", chat_id=USER, text="<b>broken", parse_mode="HTML")
    emulator.faults = Faults(rate_429=1.0, retry_after=3)
    with pytest.raises(RetryAfter) as refused:
        await api_call(client, "sendMessage", chat_id=USER, text="lại")
    assert refused.value.retry_after.total_seconds() == 3
    assert emulator.texts_to(USER) == []
