"""A local Telegram Bot API emulator (aiohttp) for end-to-end tests and offline demos.

Point python-telegram-bot at it with ``base_url=emu.api_url, base_file_url=emu.file_url``
(or ``TELEGRAM_API_URL`` / ``TELEGRAM_FILE_URL``). It serves ``/bot{token}/{method}`` (GET or
POST; form, multipart or JSON parameters) and ``/file/bot{token}/{file_path}``, lets a test act
as users (``send_text``, ``press_button``, ...) and read what the bot did (``sent``, ``calls``,
``wait_for_messages``, ``wait_idle``). It rejects what real Telegram rejects: text over 4096
characters or empty, malformed HTML with ``parse_mode=HTML`` (a bare ``<`` or ``&`` from
unescaped user input, unknown or unbalanced tags), ``callback_data`` over 64 bytes.

The user actions also work over HTTP, for demos (JSON bodies; replies ``{"ok": true, "result":
...}``, or status 400 with ``{"ok": false, "description": ...}``)::

    POST /_emulator/send_text       {"user_id": 1, "text": "/start"}  (+ first_name, language_code)
    POST /_emulator/press           {"user_id": 1, "message_id": 3, "callback_data": "x"}
    POST /_emulator/press_button    {"user_id": 1, "text_contains": "Đăng ký"}
    POST /_emulator/share_contact   {"user_id": 1, "phone_number": "0905123456"}
    POST /_emulator/share_location  {"user_id": 1, "latitude": 14.8, "longitude": 108.9}
    POST /_emulator/send_photo      {"user_id": 1}
    POST /_emulator/send_document   {"user_id": 1, "file_name": "a.csv", "content": "text"}
                                    (or "content_base64" instead of "content")
    GET  /_emulator/messages[?chat_id=1]   what the bot sent (file bytes shown as "<N bytes>")
    GET  /_emulator/calls                  every Bot API call with its parameters
    GET  /_emulator/wait?chat_id=1&count=2[&timeout=10]   wait until the bot sent that many
    GET  /_emulator/document?chat_id=1&message_id=4      download a document the bot sent

e.g. ``curl -s localhost:8081/_emulator/send_text -d '{"user_id": 1, "text": "/start"}'``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import html
import json
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

_JSON_FIELDS = frozenset(
    "reply_markup entities allowed_updates commands media scope caption_entities"
    " link_preview_options reply_parameters menu_button".split()
)
_INT_FIELDS = frozenset(
    "chat_id message_id offset limit timeout update_id user_id from_chat_id"
    " reply_to_message_id message_thread_id cache_time".split()
)
_BOOL_FIELDS = frozenset(
    "show_alert disable_notification protect_content drop_pending_updates"
    " disable_web_page_preview allow_sending_without_reply".split()
)
_TRUE_METHODS = frozenset(  # accepted and answered with `true`, nothing else
    "deletewebhook setwebhook close logout setchatmenubutton sendchataction setmydescription"
    " setmyshortdescription setmyname".split()
)
_HTML_TAGS = frozenset(
    "b strong i em u ins s strike del a code pre tg-spoiler span blockquote".split()
)
_HTML_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][\w-]*)([^<>]*)>|&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|[<&]"
)
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class _ApiError(Exception):
    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.code, self.description = code, ("Bad Request: " if code == 400 else "") + description


@dataclass
class _Pending:
    update: JSON
    delivered: bool = False


def _convert(key: str, value: Any) -> Any:
    """Decode one form/JSON parameter the way the Bot API interprets it."""
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise _ApiError(f"can't parse {key} JSON object") from None
    if key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value == "true" if key in _BOOL_FIELDS and value in ("true", "false") else value


def _html_visible_text(text: str) -> str:
    """Validate Telegram HTML; return the text the user would see."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for m in _HTML_TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        pos, name = m.end(), m.group(2) and m.group(2).lower()
        where = f"at byte offset {len(text[: m.start()].encode())}"
        if name and name not in _HTML_TAGS:
            raise _ApiError(f'can\'t parse entities: Unsupported start tag "{name}" {where}')
        if name and m.group(1):
            if not stack or stack.pop() != name:
                raise _ApiError(f'can\'t parse entities: Unmatched end tag "{name}" {where}')
        elif name:
            if name == "span" and "tg-spoiler" not in m.group(3):
                raise _ApiError(f'can\'t parse entities: span needs class "tg-spoiler" {where}')
            stack.append(name)
        elif m.group(4):
            out.append(html.unescape(m.group(0)))
        else:
            raise _ApiError(f"can't parse entities: Unescaped {m.group(0)!r} {where}")
    if stack:
        raise _ApiError(f"can't parse entities: Can't find end tag for \"{stack[-1]}\"")
    return "".join([*out, text[pos:]])


def _check_text(text: Any, parse_mode: Any, caption: bool = False) -> str:
    if caption and text is None:
        return ""
    visible = _html_visible_text(text) if isinstance(text, str) and parse_mode == "HTML" else text
    if not isinstance(visible, str) or (not visible.strip() and not caption):
        raise _ApiError("message text is empty")
    if len(visible) > (1024 if caption else 4096):
        raise _ApiError("message caption is too long" if caption else "message is too long")
    return str(text)


def _check_markup(markup: Any) -> None:
    for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
        for button in row:
            if len(str(button.get("callback_data", "")).encode()) > 64:
                raise _ApiError("BUTTON_DATA_INVALID")
            if set(button) <= {"text"}:
                raise _ApiError("text buttons are unallowed in the inline keyboard")


def _buttons(entry: JSON) -> list[JSON]:
    markup = entry["reply_markup"]
    if entry["deleted"] or not isinstance(markup, dict):
        return []
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def _bytes_repr(obj: object) -> str:
    if isinstance(obj, bytes | bytearray):
        return f"<{len(obj)} bytes>"
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _reply(result: Any) -> web.Response:
    dumps = partial(json.dumps, default=_bytes_repr, ensure_ascii=False)
    return web.json_response({"ok": True, "result": result}, dumps=dumps)


def _error(code: int, description: str) -> web.Response:
    body = {"ok": False, "error_code": code, "description": description}
    return web.json_response(body, status=code)


def _key(params: JSON) -> tuple[int, int]:
    chat_id, message_id = params.get("chat_id"), params.get("message_id")
    if isinstance(chat_id, int) and isinstance(message_id, int):
        return chat_id, message_id
    return 0, 0


class TelegramEmulator:
    """An in-process fake Telegram Bot API server, with hooks to act as users."""

    def __init__(
        self,
        token: str = "123456:TEST",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "ocop_test_bot",
    ) -> None:
        self.token, self.host, self.port = token, host, port
        bot_id = token.split(":")[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 123456,
            "is_bot": True,
            "first_name": "OCOP Test Bot",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.sent: list[JSON] = []  # bot messages, edited in place
        self.calls: list[tuple[str, JSON]] = []
        self.callback_answers: list[JSON] = []
        self.commands: list[JSON] = []
        self._queue: list[_Pending] = []  # updates not yet acknowledged
        self._next_update_id, self._counter, self._activity = 1, 0, 0
        self._next_message_ids: dict[int, int] = {}
        self._entries: dict[tuple[int, int], JSON] = {}  # the entries of `sent`, by chat and id
        self._user_messages: set[tuple[int, int]] = set()
        self._users: dict[int, JSON] = {}
        self._files: dict[str, JSON] = {}  # file_id -> {"file_path", "content", ...}
        self._callback_ids: set[str] = set()
        self._changed = asyncio.Event()  # replaced and set on every change, see _pulse
        self._stopping = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/_emulator/{action}", self._handle_control)
        self._stopping = False
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._stopping = True
        self._pulse()  # releases pending long polls at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def pending_updates(self) -> int:
        """Updates the bot has not acknowledged yet (delivered or not)."""
        return len(self._queue)

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
            for button in _buttons(entry):
                if text_contains in button["text"] and "callback_data" in button:
                    return self.press(user_id, entry["message_id"], button["callback_data"])
        available = [
            f"#{e['message_id']}: {[b['text'] for b in _buttons(e)]}"
            for e in self.messages_to(user_id)
            if _buttons(e)
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

    def send_photo(self, user_id: int) -> JSON:
        photo = [
            {
                **self._store_file(b"\xff\xd8\xff\xe0" + b"\0" * w, None, "photos"),
                "width": w,
                "height": w * 3 // 4,
            }
            for w in (90, 800)
        ]
        return self._user_message(user_id, {"photo": photo})

    def send_document(self, user_id: int, file_name: str, content: bytes) -> JSON:
        document = self._store_file(content, file_name, "documents")
        return self._user_message(user_id, {"document": document})

    def enqueue_raw(self, update: JSON) -> None:
        """Deliver ``update`` verbatim, even if the bot already acknowledged its update_id."""
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._queue.append(_Pending(copy.deepcopy(update)))
        self._pulse()

    def messages_to(self, chat_id: int) -> list[JSON]:
        return [entry for entry in self.sent if entry["chat_id"] == chat_id]

    def last_message(self, chat_id: int) -> JSON:
        if not (messages := self.messages_to(chat_id)):
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return messages[-1]

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        if not await self._wait_until(lambda: len(self.messages_to(chat_id)) >= count, timeout):
            raise TimeoutError(
                f"expected {count} messages to chat {chat_id} within {timeout}s;"
                f" the bot sent:\n{self._dump()}"
            )
        return self.messages_to(chat_id)

    async def wait_for_call(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Wait until the bot made ``count`` calls of ``method``; return their parameters."""

        def matching() -> list[JSON]:
            return [params for name, params in self.calls if name.lower() == method.lower()]

        if not await self._wait_until(lambda: len(matching()) >= count, timeout):
            raise TimeoutError(
                f"expected {count} {method} calls within {timeout}s; "
                f"calls: {[name for name, _ in self.calls]}"
            )
        return matching()

    async def wait_idle(self, timeout: float = 10.0, *, quiet: float = 0.0) -> None:  # noqa: ASYNC109
        """Wait until the bot acknowledged every update (asked getUpdates for later ones).

        PTB acknowledges updates once queued, possibly before its handlers finish; ``quiet > 0``
        also waits until the bot made no other API call for ``quiet`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        if not await self._wait_until(lambda: not self._queue, timeout):
            raise TimeoutError(f"updates not acknowledged in {timeout}s: {self._queue}")
        while quiet > 0:
            seen, left = self._activity, deadline - asyncio.get_running_loop().time()
            if not await self._wait_until(
                partial(lambda n: self._activity != n, seen), min(quiet, left)
            ):
                if left < quiet:
                    raise TimeoutError(f"the bot kept calling the API for {timeout}s")
                return

    def _pulse(self) -> None:
        """Wake every waiter: they re-check their condition (sync code can't notify a Condition)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        try:
            async with asyncio.timeout(max(seconds, 0)):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True

    def _next_counter(self) -> int:
        self._counter += 1
        return self._counter

    def _dump(self) -> str:
        return (
            "\n".join(
                f"  -> {e['chat_id']} #{e['message_id']} {e['method']}: "
                f"{e['text'] or e['caption']!r}"
                for e in self.sent
            )
            or "  (nothing)"
        )

    def _user(self, user_id: int) -> JSON:
        return self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Test", "language_code": "vi"}
        )

    def _new_message(self, chat_id: int, sender: JSON, content: JSON) -> JSON:
        message_id = self._next_message_ids.get(chat_id, 1)
        self._next_message_ids[chat_id] = message_id + 1
        chat: JSON = {"id": chat_id, "type": "private"}
        if chat_id > 0:
            chat["first_name"] = self._user(chat_id)["first_name"]
        else:
            chat.update(type="supergroup" if chat_id < -(10**12) else "group", title="Group")
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **content,
        }

    def _user_message(self, user_id: int, content: JSON) -> JSON:
        message = self._new_message(user_id, self._user(user_id), content)
        self._user_messages.add((user_id, message["message_id"]))
        return self._enqueue("message", message)

    def _enqueue(self, kind: str, payload: JSON) -> JSON:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._queue.append(_Pending(update))
        self._pulse()
        return copy.deepcopy(update)

    def _store_file(self, content: bytes, file_name: str | None, folder: str) -> JSON:
        n = self._next_counter()
        file_id, unique_id = f"FILE{n:06d}", f"U{n:06d}"
        ext = file_name.rpartition(".")[2] if file_name and "." in file_name else "jpg"
        self._files[file_id] = {
            "file_path": f"{folder}/file_{n}.{ext}",
            "content": content,
            "file_unique_id": unique_id,
        }
        stored = {"file_id": file_id, "file_unique_id": unique_id, "file_size": len(content)}
        if file_name is not None:
            mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
            stored.update(file_name=file_name, mime_type=mime)
        return stored

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        name = method.lower()
        handler: Callable[[JSON], Any] | None = getattr(self, f"_api_{name}", None)
        if handler is None and name not in _TRUE_METHODS and name != "getupdates":
            return _error(404, "Not Found: method not found")
        try:
            params = await self._read_params(request)
            self.calls.append((method, params))
            self._activity += name != "getupdates"
            self._pulse()
            if name == "getupdates":
                return _reply(await self._get_updates(params, request))
            if name == "deletewebhook" and params.get("drop_pending_updates"):
                self._queue.clear()
            return _reply(True if handler is None else handler(params))
        except _ApiError as exc:
            return _error(exc.code, exc.description)

    async def _read_params(self, request: web.Request) -> JSON:
        raw: JSON = dict(request.query)
        if request.method == "POST" and request.content_type == "application/json":
            body = await request.json()
            raw.update(body if isinstance(body, dict) else {})
        elif request.method == "POST":
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    raw[key] = {"file_name": value.filename, "content": value.file.read()}
                else:
                    raw[key] = value
        for key, value in raw.items():  # attach://<part> refers to an uploaded part
            if isinstance(value, str) and value.startswith("attach://"):
                raw[key] = raw.get(value.removeprefix("attach://"), value)
        return {key: _convert(key, value) for key, value in raw.items()}

    async def _handle_file(self, request: web.Request) -> web.Response:
        for stored in self._files.values():
            if stored["file_path"] == request.match_info["path"]:
                if request.match_info["token"] == self.token:
                    return web.Response(body=stored["content"])
        return _error(404, "Not Found")

    async def _handle_control(self, request: web.Request) -> web.Response:
        action, query = request.match_info["action"], request.query
        actions: dict[str, Callable[..., JSON]] = {
            "send_text": self.send_text,
            "press": self.press,
            "press_button": self.press_button,
            "share_contact": self.share_contact,
            "share_location": self.share_location,
            "send_photo": self.send_photo,
            "send_document": self.send_document,
        }
        try:
            if request.method == "POST" and action in actions:
                body = await request.json()
                if action == "send_document":
                    encoded, text = body.pop("content_base64", None), body.pop("content", "")
                    body["content"] = base64.b64decode(encoded) if encoded else text.encode()
                return _reply(actions[action](**body))
            if action == "messages":
                chat = query.get("chat_id")
                return _reply(self.messages_to(int(chat)) if chat else self.sent)
            if action == "calls":
                return _reply([{"method": name, "params": p} for name, p in self.calls])
            if action == "wait":
                count, timeout = int(query["count"]), float(query.get("timeout", 10))
                return _reply(await self.wait_for_messages(int(query["chat_id"]), count, timeout))
            if action == "document":
                key = (int(query["chat_id"]), int(query["message_id"]))
                if (entry := self._entries.get(key)) is None or not entry["document"]:
                    raise AssertionError(f"no document from the bot at {key}")
                disposition = f'attachment; filename="{entry["document"]["file_name"]}"'
                return web.Response(
                    body=entry["document"]["content"], headers={"Content-Disposition": disposition}
                )
        except (AssertionError, TimeoutError, KeyError, TypeError, ValueError) as exc:
            description = f"{type(exc).__name__}: {exc}"
            return web.json_response({"ok": False, "description": description}, status=400)
        return _error(404, f"Not Found: no emulator action {action!r}")

    async def _get_updates(self, params: JSON, request: web.Request) -> list[JSON]:
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:  # acknowledges what was delivered before
            self._queue = [
                p for p in self._queue if not (p.delivered and p.update["update_id"] < offset)
            ]
            self._pulse()
        await self._wait_until(
            lambda: bool(self._queue) or self._stopping, float(params.get("timeout") or 0)
        )
        if self._stopping or request.transport is None or request.transport.is_closing():
            return []  # the poller is gone: keep the updates for the next one
        batch = self._queue[: int(params.get("limit") or 100)]
        for pending in batch:
            pending.delivered = True
        return [copy.deepcopy(pending.update) for pending in batch]

    def _api_getme(self, params: JSON) -> JSON:
        return self.bot_user

    def _api_getwebhookinfo(self, params: JSON) -> JSON:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }

    def _api_getmycommands(self, params: JSON) -> list[JSON]:
        return self.commands

    def _api_setmycommands(self, params: JSON) -> bool:
        self.commands = list(params.get("commands") or [])
        return True

    _api_deletemycommands = _api_setmycommands

    def _record(self, method: str, params: JSON, content: JSON, **extra: Any) -> JSON:
        chat_id, markup = params.get("chat_id"), params.get("reply_markup")
        if not isinstance(chat_id, int):
            raise _ApiError("chat_id is empty" if chat_id in (None, "") else "chat not found")
        _check_markup(markup)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            content["reply_markup"] = markup
        message = self._new_message(chat_id, self.bot_user, content)
        entry = {
            "chat_id": chat_id,
            "message_id": message["message_id"],
            "method": method,
            "text": content.get("text"),
            "caption": content.get("caption"),
            "reply_markup": markup,
            "parse_mode": params.get("parse_mode"),
            "document": None,
            "photo": None,
            "deleted": False,
            "edited": False,
            "message": message,
            **extra,
        }
        self.sent.append(entry)
        self._entries[(chat_id, message["message_id"])] = entry
        self._pulse()
        return copy.deepcopy(message)

    def _api_sendmessage(self, params: JSON) -> JSON:
        text = _check_text(params.get("text"), params.get("parse_mode"))
        return self._record("sendMessage", params, {"text": text})

    def _api_senddocument(self, params: JSON) -> JSON:
        kind = "photo" if "photo" in params else "document"
        upload = params.get(kind)
        if isinstance(upload, dict):
            name, content = upload.get("file_name") or kind, upload["content"]
        elif isinstance(upload, str) and upload in self._files:  # re-sending by file_id
            name, content = upload, self._files[upload]["content"]
        else:
            raise _ApiError("wrong file identifier/HTTP URL specified")
        body: JSON = {}
        if caption := _check_text(params.get("caption"), params.get("parse_mode"), caption=True):
            body["caption"] = caption
        if kind == "photo":
            body["photo"] = [
                {**self._store_file(content, None, "photos"), "width": 800, "height": 600}
            ]
        else:
            body["document"] = self._store_file(content, name, "documents")
        return self._record(
            "sendPhoto" if kind == "photo" else "sendDocument",
            params,
            body,
            **{kind: {"file_name": name, "content": content}},
        )

    _api_sendphoto = _api_senddocument

    def _api_editmessagetext(self, params: JSON) -> JSON:
        """editMessageText (when ``text`` is given) and editMessageReplyMarkup."""
        entry, markup = self._entries.get(_key(params)), params.get("reply_markup")
        if entry is None or entry["deleted"]:
            raise _ApiError("message to edit not found")
        text = entry["text"]
        if "text" in params:
            if text is None:
                raise _ApiError("there is no text in the message to edit")
            text = _check_text(params["text"], params.get("parse_mode"))
            entry["parse_mode"] = params.get("parse_mode")
        _check_markup(markup)
        if text == entry["text"] and markup == entry["reply_markup"]:
            raise _ApiError(_NOT_MODIFIED)
        entry.update(text=text, reply_markup=markup, edited=True)
        message = entry["message"]
        if text is not None:
            message["text"] = text
        message.pop("reply_markup", None)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        self._pulse()
        return copy.deepcopy(message)

    _api_editmessagereplymarkup = _api_editmessagetext

    def _api_deletemessage(self, params: JSON) -> bool:
        key = _key(params)
        if (entry := self._entries.get(key)) is not None and not entry["deleted"]:
            entry["deleted"] = True
        elif key in self._user_messages:
            self._user_messages.discard(key)
        else:
            raise _ApiError("message to delete not found")
        self._pulse()
        return True

    def _api_answercallbackquery(self, params: JSON) -> bool:
        if params.get("callback_query_id") not in self._callback_ids:
            raise _ApiError("query is too old and response timeout expired or query ID is invalid")
        self.callback_answers.append(
            {
                "callback_query_id": params["callback_query_id"],
                "text": params.get("text"),
                "show_alert": bool(params.get("show_alert")),
            }
        )
        return True

    def _api_getfile(self, params: JSON) -> JSON:
        if (stored := self._files.get(str(params.get("file_id")))) is None:
            raise _ApiError("invalid file_id")
        return {
            "file_id": params["file_id"],
            "file_unique_id": stored["file_unique_id"],
            "file_size": len(stored["content"]),
            "file_path": stored["file_path"],
        }
