"""The Telegram emulator's webhook mode: pushed updates, the secret, retries, order, conflicts.

A tiny aiohttp server in the test plays the bot's webhook; PTB's Bot sets and deletes it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict

from bot.emulator import TelegramEmulator
from bot.emulator.webhook import SECRET_HEADER

USER, OTHER, THIRD = 1001, 1002, 1003
SECRET = "s3cret_Token-42"
# Every wait is bounded: a few back-offs of at most RETRY_MAX, and requests answered at once
# (or held by the receiver for SLOW seconds), finish far within this.
RETRY_INITIAL, RETRY_MAX, SLOW = 0.01, 0.05, 0.02
WAIT = 5.0


class Receiver:
    """The bot's side of the webhook: records each POST, answers as ``answer`` decides."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # headers and JSON body, in arrival order
        self.answer: Callable[[dict[str, Any]], Any] = lambda update: 200
        self.in_flight: dict[int | None, int] = {}  # chat -> requests being answered now
        self.max_per_chat = 0
        self.max_overall = 0
        self.release = asyncio.Event()  # ends every request the receiver holds
        self.second = asyncio.Event()  # set once two requests arrived
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def updates(self, chat: int | None = None) -> list[int]:
        return [r["body"]["update_id"] for r in self.requests if chat is None or r["chat"] == chat]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        chat = _chat(body)
        self.requests.append({"headers": dict(request.headers), "body": body, "chat": chat})
        self.in_flight[chat] = self.in_flight.get(chat, 0) + 1
        self.max_per_chat = max(self.max_per_chat, self.in_flight[chat])
        self.max_overall = max(self.max_overall, sum(self.in_flight.values()))
        if len(self.requests) >= 2:
            self.second.set()
        try:
            answer = self.answer(body)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return web.Response(status=answer, text="")
        finally:
            self.in_flight[chat] -= 1


def _chat(update: dict[str, Any]) -> int | None:
    if "message" in update:
        return int(update["message"]["chat"]["id"])
    if "callback_query" in update:
        return int(update["callback_query"]["message"]["chat"]["id"])
    return None


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator()
    emu.configure_webhook(retry_initial=RETRY_INITIAL, retry_max=RETRY_MAX)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
async def client(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    async with Bot(emulator.token, base_url=emulator.api_url) as tg_bot:
        yield tg_bot


def _closed_port() -> int:
    """A loopback port nobody listens on (just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_updates_are_pushed_as_json_with_the_secret(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    assert await client.set_webhook(receiver.url, secret_token=SECRET)
    update = emulator.send_text(USER, "/start")

    await emulator.wait_idle(timeout=WAIT)
    [request] = receiver.requests
    assert request["headers"][SECRET_HEADER] == SECRET
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == update
    assert emulator.pending_updates == 0
    assert [(a["update_id"], a["status"], a["error"]) for a in emulator.webhook_attempts] == [
        (update["update_id"], 200, None)
    ]
    info = await client.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0
    assert info.max_connections == 40 and info.last_error_date is None


async def test_no_secret_no_header(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    await client.set_webhook(receiver.url)
    emulator.send_text(USER, "hi")
    await emulator.wait_idle(timeout=WAIT)
    assert SECRET_HEADER not in receiver.requests[0]["headers"]


async def test_a_failed_answer_sends_the_same_update_again_until_2xx(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    script = iter([500, 502, 200, 204])  # then 200 for anything after
    receiver.answer = lambda update: next(script, 200)
    await client.set_webhook(receiver.url, secret_token=SECRET)
    first = emulator.send_text(USER, "one")["update_id"]
    second = emulator.send_text(USER, "two")["update_id"]

    await emulator.wait_idle(timeout=WAIT)
    assert receiver.updates() == [first, first, first, second]
    assert [(a["update_id"], a["status"]) for a in emulator.webhook_attempts] == [
        (first, 500),
        (first, 502),
        (first, 200),
        (second, 204),
    ]
    assert emulator.webhook_attempts[1]["error"] == (
        "Wrong response from the webhook: 502 Bad Gateway"
    )
    # Each retry waited at least the back-off: 0.01 s, then 0.02 s.
    times = [a["at"] for a in emulator.webhook_attempts]
    assert times[1] - times[0] >= RETRY_INITIAL and times[2] - times[1] >= 2 * RETRY_INITIAL
    info = await client.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"


async def test_a_timed_out_post_is_retried(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    emulator.configure_webhook(timeout=0.1)
    calls = 0

    async def answer(update: dict[str, Any]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # hold the first POST past the emulator's timeout
            await receiver.release.wait()
        return 200

    receiver.answer = answer
    await client.set_webhook(receiver.url)
    update_id = emulator.send_text(USER, "slow")["update_id"]

    await emulator.wait_idle(timeout=WAIT)
    assert receiver.updates() == [update_id, update_id]
    assert [a["error"] for a in emulator.webhook_attempts] == ["Read timeout expired", None]


async def test_webhook_info_tells_the_pending_count_and_the_last_error(
    client: Bot, emulator: TelegramEmulator
) -> None:
    before = int(time.time())
    await client.set_webhook(f"http://127.0.0.1:{_closed_port()}/hook", max_connections=3)
    emulator.send_text(USER, "anyone?")
    emulator.send_text(OTHER, "hello?")

    attempts = await emulator.wait_for_webhook_attempts(4, timeout=WAIT)  # retried, both chats
    assert {a["error"] for a in attempts} == {"Connection refused"}
    info = await client.get_webhook_info()
    assert info.pending_update_count == 2 and info.max_connections == 3
    assert info.last_error_message == "Connection refused"
    assert info.last_error_date is not None
    assert before <= info.last_error_date.timestamp() <= time.time() + 1

    # Nothing was lost: back to polling, both updates are there.
    assert await client.delete_webhook()
    updates = await client.get_updates()
    assert [u.effective_chat.id for u in updates if u.effective_chat] == [USER, OTHER]


async def test_a_chat_gets_its_updates_one_at_a_time_in_order(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    await client.send_message(USER, "Sure?", reply_markup=keyboard)

    async def slow(update: dict[str, Any]) -> int:
        if len(receiver.requests) == 1:
            # The first POST is held until a second arrives: chats go concurrently.
            await receiver.second.wait()
        await asyncio.sleep(SLOW)  # a slow bot: time for a second POST to the chat, if any
        return 200

    receiver.answer = slow
    await client.set_webhook(receiver.url, max_connections=2)
    expected: dict[int, list[int]] = {USER: [], OTHER: [], THIRD: []}
    for chat in expected:  # a chat's updates queued back to back: the pusher must not overlap
        for n in range(4):
            expected[chat].append(emulator.send_text(chat, f"message {n}")["update_id"])
        if chat == USER:
            expected[USER].append(emulator.press_button(USER, "Yes")["update_id"])

    await emulator.wait_idle(timeout=WAIT)
    for chat, update_ids in expected.items():
        assert receiver.updates(chat) == update_ids
    assert receiver.max_per_chat == 1
    assert receiver.max_overall == 2  # concurrent, but never over max_connections
    assert all(a["status"] == 200 for a in emulator.webhook_attempts)


async def test_get_updates_conflicts_with_a_webhook(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    poll = asyncio.create_task(client.get_updates(timeout=30))
    await emulator.wait_for_call("getUpdates")
    await client.set_webhook(receiver.url)
    with pytest.raises(Conflict, match="terminated by setWebhook request"):
        await asyncio.wait_for(poll, WAIT)
    with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
        await client.get_updates()

    assert await client.delete_webhook()
    assert (await client.get_webhook_info()).url == ""
    update = emulator.send_text(USER, "polling again")
    [got] = await client.get_updates(timeout=1)
    assert got.update_id == update["update_id"]
    assert not receiver.requests


async def test_drop_pending_updates(client: Bot, emulator: TelegramEmulator) -> None:
    emulator.send_text(USER, "old")
    await client.set_webhook(f"http://127.0.0.1:{_closed_port()}/hook")
    await emulator.wait_for_webhook_attempts(1, timeout=WAIT)
    assert emulator.pending_updates == 1
    assert await client.delete_webhook(drop_pending_updates=True)
    assert emulator.pending_updates == 0
    assert await client.get_updates() == ()


async def test_bad_webhooks_are_refused(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    for secret in ("has space", "ünïcode", "x" * 257):
        with pytest.raises(BadRequest, match=r"(?i)secret token contains unallowed characters"):
            await client.set_webhook(receiver.url, secret_token=secret)
    async with httpx.AsyncClient() as http:  # the raw answer, before PTB reformats it
        answer = await http.post(
            f"{emulator.api_url}{emulator.token}/setWebhook",
            json={"url": receiver.url, "secret_token": "no/slash"},
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: secret token contains unallowed characters",
    }
    assert await client.set_webhook(receiver.url, secret_token="A" * 256)
    for url in ("ftp://127.0.0.1/hook", "http://example.com/hook", "not a url"):
        with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
            await client.set_webhook(url)
    assert (await client.get_webhook_info()).url == receiver.url


async def test_stop_cancels_a_delivery_in_flight(receiver: Receiver) -> None:
    emulator = TelegramEmulator()
    await emulator.start()
    held = asyncio.Event()

    async def hold(update: dict[str, Any]) -> int:
        held.set()
        await receiver.release.wait()
        return 200

    receiver.answer = hold
    async with Bot(emulator.token, base_url=emulator.api_url) as client:
        await client.set_webhook(receiver.url)
    emulator.send_text(USER, "in flight")
    await asyncio.wait_for(held.wait(), WAIT)
    await asyncio.wait_for(emulator.stop(), WAIT)  # the POST is held for ever; stop cancels it
    assert emulator.pending_updates == 1 and not emulator.webhook_attempts


async def test_webhook_control_route(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    base = f"http://{emulator.host}:{emulator.port}/_emulator/webhook"
    async with httpx.AsyncClient() as http:
        answer = await http.post(base, json={"retry_max": 0.5})
        assert answer.json()["result"]["settings"]["retry_max"] == 0.5
        assert (await http.post(base, json={"retry_initial": -1})).status_code == 400
        await client.set_webhook(receiver.url)
        emulator.send_text(USER, "hi")
        await emulator.wait_idle(timeout=WAIT)
        result = (await http.get(base)).json()["result"]
    assert result["info"]["url"] == receiver.url
    assert [(a["chat"], a["status"]) for a in result["attempts"]] == [(USER, 200)]


async def test_updates_not_in_allowed_updates_are_dropped(
    client: Bot, emulator: TelegramEmulator, receiver: Receiver
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    await client.send_message(USER, "Sure?", reply_markup=keyboard)
    await client.set_webhook(receiver.url, allowed_updates=["message"])
    assert (await client.get_webhook_info()).allowed_updates == ("message",)
    pressed = emulator.press_button(USER, "Yes")["update_id"]
    sent = emulator.send_text(USER, "text")["update_id"]

    await emulator.wait_idle(timeout=WAIT)
    assert receiver.updates() == [sent]
    assert [(a["update_id"], a["status"]) for a in emulator.webhook_attempts] == [
        (pressed, None),
        (sent, 200),
    ]
