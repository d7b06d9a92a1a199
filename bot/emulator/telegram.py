"""A local Telegram Bot API emulator (aiohttp) for end-to-end tests, benchmarks and offline demos.

Point python-telegram-bot at it with ``base_url=emu.api_url, base_file_url=emu.file_url``
(or ``TELEGRAM_API_URL`` / ``TELEGRAM_FILE_URL``). It serves ``/bot{token}/{method}`` (GET or
POST; form, multipart or JSON parameters) and ``/file/bot{token}/{file_path}``, lets a test act
as users (``send_text``, ``press_button``, ...) and read what the bot did (``sent``, ``calls``,
``failures``, ``wait_for_messages``, ``wait_idle``). It rejects what real Telegram rejects (see
``wire``): text over 4096 characters or empty, malformed HTML, ``callback_data`` over 64 bytes.

Updates wait in a queue until acknowledged. ``getUpdates`` long-polls them (``offset``
acknowledges). Or, as real Telegram does after ``setWebhook`` (``url``, ``secret_token``,
``max_connections``, ``drop_pending_updates``, ``allowed_updates``), they are POSTed to the
webhook (getUpdates then answers 409) and retried with a back-off until answered 2xx, one at a
time per chat, chats concurrently (plain http is accepted on loopback); ``deleteWebhook`` goes
back to polling, ``getWebhookInfo`` tells the pending count and the last error,
``webhook_attempts`` records every POST, ``webhook_timeout``, ``webhook_retry_initial`` and
``webhook_retry_max`` set the timeout and back-off (see ``webhook``).

Sends (sendMessage, sendDocument, sendPhoto) can be made to fail (``emu.faults = Faults(...)``)
and are held to Telegram's flood limits (``emu.limits = Limits(...)``); ``delivery_times``,
``min_interval_per_chat``, ``max_in_window``, ``texts_to``, ``throttled`` and ``injected`` tell
whether the bot respected them (see ``faults``). The same, and the user actions, over HTTP under
``/_emulator/`` (see ``control``).

Layout: ``wire`` (parameters, checks, JSON replies), ``state`` (what was sent, waiting),
``botapi`` (the Bot API methods), ``webhook`` (webhook mode), ``faults`` (faults, limits, their
records), ``control`` (the ``/_emulator/`` routes), this module (the server and the user actions).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.emulator.botapi import BotApiMethods
from bot.emulator.control import handle_control
from bot.emulator.faults import DeliveryChecks, Refusal
from bot.emulator.state import _Pending
from bot.emulator.wire import (
    JSON,
    SEND_METHODS,
    TRUE_METHODS,
    ApiError,
    buttons,
    error,
    read_params,
    reply,
)


def _caption(caption: str | None) -> JSON:
    return {"caption": caption} if caption else {}


class TelegramEmulator(BotApiMethods, DeliveryChecks):
    """An in-process fake Telegram Bot API server, with hooks to act as users."""

    def __init__(
        self,
        token: str = "123456:TEST",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "ocop_test_bot",
    ) -> None:
        BotApiMethods.__init__(self, token, bot_username)
        DeliveryChecks.__init__(self)
        self.host, self.port = host, port
        self._released = asyncio.Event()  # set by stop(): ends requests held by a timeout fault
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/_emulator/{action}", self._handle_control)
        self._stopping = False
        self._released = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self._start_pushing()

    async def stop(self) -> None:
        self._stopping = True
        self._pulse()  # releases pending long polls at once
        self._released.set()
        await self._stop_pushing()  # updates being pushed to a webhook stay queued
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    def send_text(
        self, user_id: int, text: str, *, first_name: str = "Test", language_code: str = "vi"
    ) -> JSON:
        self._users[user_id] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        content: JSON = {"text": text}
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0].encode("utf-16-le")) // 2
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._user_message(user_id, content)

    def press(self, user_id: int, message_id: int, callback_data: str) -> JSON:
        entry = self._entries.get((user_id, message_id))
        if entry is None or entry["deleted"]:
            raise AssertionError(f"no bot message {message_id} in chat {user_id}")
        query_id = str(self._next_counter())
        self._callback_ids.add(query_id)
        return self._enqueue(
            "callback_query",
            {
                "id": query_id,
                "from": self._user(user_id),
                "chat_instance": str(user_id),
                "message": copy.deepcopy(entry["message"]),
                "data": callback_data,
            },
        )

    def press_button(self, user_id: int, text_contains: str) -> JSON:
        for entry in reversed(self.messages_to(user_id)):
            for button in buttons(entry):
                if text_contains in button["text"] and "callback_data" in button:
                    return self.press(user_id, entry["message_id"], button["callback_data"])
        available = [
            f"#{e['message_id']}: {[b['text'] for b in buttons(e)]}"
            for e in self.messages_to(user_id)
            if buttons(e)
        ]
        raise AssertionError(
            f"no button containing {text_contains!r} in chat {user_id}; "
            f"available: {'; '.join(available) or 'none'}"
        )

    def share_contact(
        self, user_id: int, phone_number: str, *, contact_user_id: int | None = None
    ) -> JSON:
        """Share a contact; ``contact_user_id`` defaults to the sender (their own number)."""
        contact = {
            "phone_number": phone_number,
            "first_name": self._user(user_id)["first_name"],
            "user_id": user_id if contact_user_id is None else contact_user_id,
        }
        return self._user_message(user_id, {"contact": contact})

    def share_location(self, user_id: int, latitude: float, longitude: float) -> JSON:
        return self._user_message(
            user_id, {"location": {"latitude": latitude, "longitude": longitude}}
        )

    def send_photo(
        self, user_id: int, content: bytes | None = None, *, caption: str | None = None
    ) -> JSON:
        """A photo as Telegram delivers one: every size it made, the largest last (`content`,
        or a tiny JPEG), each with its own file id."""
        largest = content if content is not None else b"\xff\xd8\xff\xe0" + b"\0" * 800
        sizes = [(b"\xff\xd8\xff\xe0" + b"\0" * 90, 90), (largest, 800)]
        photo = [
            {**self._store_file(data, None, "photos"), "width": w, "height": w * 3 // 4}
            for data, w in sizes
        ]
        return self._user_message(user_id, {"photo": photo, **_caption(caption)})

    def send_document(
        self, user_id: int, file_name: str, content: bytes, *, caption: str | None = None
    ) -> JSON:
        document = self._store_file(content, file_name, "documents")
        return self._user_message(user_id, {"document": document, **_caption(caption)})

    def enqueue_raw(self, update: JSON) -> None:
        """Deliver ``update`` verbatim, even if the bot already acknowledged its update_id."""
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._queue.append(_Pending(copy.deepcopy(update)))
        self._queued()
        self._pulse()

    def _user_message(self, user_id: int, content: JSON) -> JSON:
        message = self._new_message(user_id, self._user(user_id), content)
        self._user_messages.add((user_id, message["message_id"]))
        return self._enqueue("message", message)

    def _enqueue(self, kind: str, payload: JSON) -> JSON:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._queue.append(_Pending(update))
        self._queued()
        self._pulse()
        return copy.deepcopy(update)

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return error(401, "Unauthorized")
        method = request.match_info["method"]
        name = method.lower()
        handler: Callable[[JSON], Any] | None = getattr(self, f"_api_{name}", None)
        if handler is None and name not in TRUE_METHODS and name != "getupdates":
            return error(404, "Not Found: method not found")
        try:
            params = await read_params(request)
        except ApiError as exc:
            return error(exc.code, exc.description)
        self.calls.append((method, params))
        self._activity += name != "getupdates"
        self._pulse()
        try:
            if name == "getupdates":
                return reply(await self._get_updates(params, request))
            if name in SEND_METHODS and handler is not None:
                return await self._send(method, handler, params)
            return reply(True if handler is None else handler(params))
        except ApiError as exc:
            self.failures.append((method, exc.code, params))
            return error(exc.code, exc.description)

    async def _send(
        self, method: str, handler: Callable[[JSON], Any], params: JSON
    ) -> web.Response:
        """A send: refused by a fault or a limit, or accepted (and its time recorded)."""
        chat_id = params.get("chat_id")
        chat = chat_id if isinstance(chat_id, int) else None
        now = time.monotonic()
        if (refusal := self._refusal(chat, now)) is not None:
            self.failures.append((method, refusal.code, params))
            return await self._refuse(refusal)
        result = handler(params)
        self._accepted(params["chat_id"], now)
        return reply(result)

    async def _refuse(self, refusal: Refusal) -> web.Response:
        if refusal.hold is not None:  # the client should time out; stop() ends the wait early
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(refusal.hold):
                    await self._released.wait()
        return error(refusal.code, refusal.description, refusal.parameters)

    async def _handle_file(self, request: web.Request) -> web.Response:
        for stored in self._files.values():
            if stored["file_path"] == request.match_info["path"]:
                if request.match_info["token"] == self.token:
                    return web.Response(body=stored["content"])
        return error(404, "Not Found")

    async def _handle_control(self, request: web.Request) -> web.Response:
        return await handle_control(self, request)
