"""A local Zalo Bot API emulator (aiohttp) for end-to-end tests and offline demos.

Point the bot at it with ``ZALO_API_URL=emu.api_url`` and ``ZALO_BOT_TOKEN=emu.token``. It serves
``/bot{token}/{method}`` (POST with a JSON body, or a query string) and answers as the Zalo Bot
API does: ``{"ok": true, "result": ...}``, or ``{"ok": false, "error_code": ..., "description":
...}`` with that HTTP status. Methods: ``getMe``; ``getUpdates`` (long polling: ONE update per
call, or error 408 "Request timeout" when none arrived within ``timeout`` seconds, given as a
string; refused while a webhook is set); ``setWebhook`` (an HTTPS ``url``, as the published
setWebhook page requires, and a ``secret_token`` of 8 to 256 characters), ``deleteWebhook``,
``getWebhookInfo``;
``sendMessage`` (``text`` of 1 to 2000 characters, to a chat that wrote to the bot),
``sendPhoto`` (``photo`` URL, ``caption``), ``sendChatAction`` (``typing`` only: the
published page lists ``upload_photo`` as "coming soon").

A test acts as users (``send_text``, ``send_image`` (its bytes served at the update's
``photo_url``, under ``/_files/``), ``send_sticker``, ``send_unsupported``, and
``enqueue_raw`` to deliver an update again) and reads what the bot did (``sent``,
``messages_to``, ``texts_to``, ``wait_for_messages``, ``calls``, ``failures``, ``actions``). With
a webhook set, updates are POSTed to it one at a time with the ``X-Bot-Api-Secret-Token`` header
(``webhook_statuses`` records the answers); ``post_to_webhook`` posts one with any secret or none.
A bot serves its webhook behind a TLS proxy: ``tls_proxy`` maps the HTTPS origin given to
setWebhook to the plain address the bot listens on, as the proxy would.
``fail_next`` makes the next calls of a method fail; sends to ``blocked_chats`` are refused with
``blocked_error`` (code and description; no code for it is published, so tests choose one).
Demos: ``python -m bot.emulator.zalo_control`` serves it, with ``/_emulator/`` routes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
SECRET_HEADER = "X-Bot-Api-Secret-Token"
TEXT_LIMIT = 2000
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class ApiError(Exception):
    def __init__(self, code: int, description: str | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description or _REASONS.get(code, "Error")


def _reply(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: JSON | None = None) -> web.Response:
    body: JSON = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def _now_ms() -> int:
    return int(time.time() * 1000)


class ZaloEmulator:
    """An in-process fake Zalo Bot API server, with hooks to act as users."""

    def __init__(
        self,
        token: str = "2000000001:ZALO-TEST-TOKEN",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_name: str = "Bot OCOP",
    ) -> None:
        self.token, self.host, self.port, self.bot_name = token, host, port, bot_name
        self.sent: list[JSON] = []  # the bot's messages, in order
        self.calls: list[tuple[str, JSON]] = []
        self.failures: list[tuple[str, int, JSON]] = []
        self.actions: list[JSON] = []  # sendChatAction calls
        self.webhook: JSON | None = None
        self.webhook_statuses: list[int] = []
        self.blocked_chats: set[str] = set()
        self.blocked_error: tuple[int, str] = (403, "Forbidden: the user blocked the bot")
        self.files: dict[str, bytes] = {}  # images users sent, served under /_files/
        self.tls_proxy: dict[str, str] = {}  # "https://bot.example" -> "http://127.0.0.1:8444"
        self._faults: dict[str, list[int]] = {}
        self._queue: deque[JSON] = deque()
        self._chats: set[str] = set()
        self._prefix, self._counter = secrets.token_hex(4), 0
        self._changed = asyncio.Event()
        self._stopping = False
        # Called on every change, e.g. by the sandbox's web chat to push what is new.
        self.on_change: list[Callable[[], None]] = []
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._methods: dict[str, Callable[[JSON, web.Request], Awaitable[Any]]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "sendchataction": self._send_chat_action,
        }

    async def start(self) -> None:
        from bot.emulator.zalo_control import add_control_routes

        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/_files/{name}", self._handle_file)
        add_control_routes(app, self)
        self._stopping = False
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()
        self._pusher = asyncio.create_task(self._push_to_webhook(), name="zalo-emulator-webhook")

    async def stop(self) -> None:
        self._stopping = True
        self._pulse()  # releases pending long polls at once
        if self._pusher is not None:
            await self._pusher
            self._pusher = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    # --- acting as users ----------------------------------------------------------------

    def send_text(self, user_id: str, text: str, *, display_name: str = "Nông dân") -> JSON:
        return self._user_event(user_id, "message.text.received", {"text": text}, display_name)

    def send_image(self, user_id: str, caption: str = "", content: bytes | None = None) -> JSON:
        """An image; with `content`, its `photo_url` serves those bytes (as Zalo's CDN would)."""
        url = "https://example.invalid/photo.jpg"
        if content is not None:
            name = f"{self._next_id()}.jpg"
            self.files[name] = content
            url = f"http://{self.host}:{self.port}/_files/{name}"
        message = {"photo_url": url, "caption": caption}
        return self._user_event(user_id, "message.image.received", message)

    def send_sticker(self, user_id: str) -> JSON:
        content = {"sticker": "5a3b", "url": "https://example.invalid/sticker.png"}
        return self._user_event(user_id, "message.sticker.received", content)

    def send_unsupported(self, user_id: str) -> JSON:
        return self._user_event(user_id, "message.unsupported.received", {})

    def enqueue_raw(self, update: JSON) -> None:
        """Deliver ``update`` verbatim (again): Zalo redelivering the same message."""
        self._queue.append(copy.deepcopy(update))
        self._pulse()

    def fail_next(self, method: str, code: int, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` fail with ``code`` (500, 502, 429…)."""
        self._faults.setdefault(method.lower(), []).extend([code] * times)

    def _user_event(
        self, user_id: str, event_name: str, content: JSON, display_name: str = "Nông dân"
    ) -> JSON:
        self._chats.add(user_id)
        message = {
            "message_id": self._next_id(),
            "from": {"id": user_id, "display_name": display_name, "is_bot": False},
            "chat": {"id": user_id, "chat_type": "PRIVATE"},
            "date": _now_ms(),
            **content,
        }
        update = {"event_name": event_name, "message": message}
        self.enqueue_raw(update)
        return copy.deepcopy(update)

    def _next_id(self) -> str:
        self._counter += 1
        return f"{self._prefix}{self._counter:012x}"

    # --- what the bot did -----------------------------------------------------------------

    @property
    def pending_updates(self) -> int:
        return len(self._queue)

    def messages_to(self, chat_id: str) -> list[JSON]:
        return [message for message in self.sent if message["chat_id"] == chat_id]

    def texts_to(self, chat_id: str) -> list[str]:
        return [m["text"] or m["caption"] or "" for m in self.messages_to(chat_id)]

    async def wait_for_messages(
        self,
        chat_id: str,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        if not await self._wait_until(lambda: len(self.messages_to(chat_id)) >= count, timeout):
            sent = "\n".join(f"  -> {m['chat_id']}: {m['text']!r}" for m in self.sent)
            raise TimeoutError(
                f"expected {count} messages to chat {chat_id} within {timeout}s; "
                f"the bot sent:\n{sent or '  (nothing)'}"
            )
        return self.messages_to(chat_id)

    async def post_to_webhook(self, update: JSON, secret: str | None) -> int:
        """POST an update to the webhook as Zalo would, with this secret (None: no header)."""
        if self.webhook is None or self._http is None:
            raise AssertionError("no webhook is set")
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        url = str(self.webhook["url"])
        for origin, plain in self.tls_proxy.items():
            if url.startswith(origin + "/") or url == origin:
                url = plain + url[len(origin) :]
        try:
            async with self._http.post(url, json=update, headers=headers) as answer:
                await answer.read()
                return answer.status
        except aiohttp.ClientError:
            return 0  # nobody listening

    # --- the Bot API ----------------------------------------------------------------------

    async def _handle_file(self, request: web.Request) -> web.Response:
        content = self.files.get(request.match_info["name"])
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content, content_type="image/jpeg")

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params: JSON = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                return _error(400, "Bad Request: the body is not JSON")
            params.update(body if isinstance(body, dict) else {})
        self.calls.append((method, params))
        self._pulse()
        handler = self._methods.get(method.lower())
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            if faults := self._faults.get(method.lower()):
                raise ApiError(faults.pop(0))
            return _reply(await handler(params, request))
        except ApiError as error:
            self.failures.append((method, error.code, params))
            extra = {"retry_after": 1} if error.code == 429 else None
            return _error(error.code, error.description, extra)

    async def _get_me(self, params: JSON, request: web.Request) -> JSON:
        return {
            "id": self.token.split(":")[0],
            "account_name": self.bot_name,
            "account_type": "BASIC",
            "can_join_groups": False,
        }

    async def _get_updates(self, params: JSON, request: web.Request) -> JSON:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: a webhook is set; call deleteWebhook first")
        try:
            seconds = float(params.get("timeout") or 0)
        except ValueError:
            raise ApiError(400, "Bad Request: timeout must be a number of seconds") from None
        await self._wait_until(lambda: bool(self._queue) or self._stopping, seconds)
        gone = request.transport is None or request.transport.is_closing()
        if self._queue and not self._stopping and not gone:  # else keep it for the next poll
            return self._queue.popleft()
        raise ApiError(408)

    async def _set_webhook(self, params: JSON, request: web.Request) -> JSON:
        url, secret = params.get("url"), params.get("secret_token")
        if not isinstance(url, str) or not url.startswith("https://") or len(url) <= 8:
            raise ApiError(400, "Bad Request: url must be an HTTPS URL")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            raise ApiError(400, "Bad Request: secret_token must be 8 to 256 characters")
        self.webhook = {"url": url, "secret_token": secret, "updated_at": _now_ms()}
        self._pulse()
        return {"url": url, "updated_at": self.webhook["updated_at"]}

    async def _delete_webhook(self, params: JSON, request: web.Request) -> JSON:
        self.webhook = None
        return {"url": "", "updated_at": _now_ms()}

    async def _get_webhook_info(self, params: JSON, request: web.Request) -> JSON:
        webhook = self.webhook or {"url": "", "updated_at": 0}
        return {"url": webhook["url"], "updated_at": webhook["updated_at"]}

    def _check_chat(self, chat_id: Any) -> str:
        if not isinstance(chat_id, str) or not chat_id:
            raise ApiError(400, "Bad Request: chat_id is required")
        if chat_id in self.blocked_chats:
            raise ApiError(*self.blocked_error)
        if chat_id not in self._chats:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _record(self, method: str, chat_id: str, **content: Any) -> JSON:
        entry = {
            "chat_id": chat_id,
            "message_id": self._next_id(),
            "method": method,
            "text": None,
            "photo": None,
            "caption": None,
            "date": _now_ms(),
            **content,
        }
        self.sent.append(entry)
        self._pulse()
        return {"message_id": entry["message_id"], "date": entry["date"]}

    async def _send_message(self, params: JSON, request: web.Request) -> JSON:
        chat_id, text = self._check_chat(params.get("chat_id")), params.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= TEXT_LIMIT:
            raise ApiError(400, f"Bad Request: text must be 1 to {TEXT_LIMIT} characters")
        return self._record("sendMessage", chat_id, text=text)

    async def _send_photo(self, params: JSON, request: web.Request) -> JSON:
        chat_id, photo = self._check_chat(params.get("chat_id")), params.get("photo")
        caption = params.get("caption")
        if not isinstance(photo, str) or not photo.startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: photo must be a URL")
        if caption is not None and (not isinstance(caption, str) or len(caption) > TEXT_LIMIT):
            raise ApiError(400, f"Bad Request: caption must be at most {TEXT_LIMIT} characters")
        return self._record("sendPhoto", chat_id, photo=photo, caption=caption)

    async def _send_chat_action(self, params: JSON, request: web.Request) -> bool:
        chat_id, action = self._check_chat(params.get("chat_id")), params.get("action")
        if action != "typing":
            raise ApiError(400, "Bad Request: unknown action")
        self.actions.append({"chat_id": chat_id, "action": action})
        return True

    # --- webhook mode and waiting ---------------------------------------------------------

    async def _push_to_webhook(self) -> None:
        """Deliver queued updates to the webhook, one at a time, while one is set."""
        while not self._stopping:
            await self._wait_until(
                lambda: self._stopping or (self.webhook is not None and bool(self._queue)), None
            )
            if self._stopping or self.webhook is None or not self._queue:
                continue
            update = self._queue.popleft()
            status = await self.post_to_webhook(update, self.webhook["secret_token"])
            self.webhook_statuses.append(status)
            self._pulse()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until `predicate` holds (re-checked after every API call); False on timeout."""
        return await self._wait_until(predicate, timeout)

    def _pulse(self) -> None:
        """Wake every waiter: they re-check their condition."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        for listener in self.on_change:
            listener()

    async def _wait_until(self, predicate: Callable[[], bool], seconds: float | None) -> bool:
        try:
            async with asyncio.timeout(None if seconds is None else max(seconds, 0)):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True
