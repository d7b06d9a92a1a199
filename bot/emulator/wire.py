"""The emulator's wire format: parameter decoding, Telegram's content checks, JSON replies.

Stateless helpers shared by the Bot API methods (``botapi``), the HTTP dispatch (``telegram``)
and the control routes (``control``). The checks reject what real Telegram rejects: text over
4096 characters (captions 1024) or empty, malformed HTML with ``parse_mode=HTML`` (a bare ``<``
or ``&`` from unescaped user input, unknown or unbalanced tags), ``callback_data`` over 64 bytes.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import signal
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from aiohttp import web

JSON = dict[str, Any]

_JSON_FIELDS = frozenset(
    "reply_markup entities allowed_updates commands media scope caption_entities"
    " link_preview_options reply_parameters menu_button".split()
)
_INT_FIELDS = frozenset(
    "chat_id message_id offset limit timeout update_id user_id from_chat_id"
    " reply_to_message_id message_thread_id cache_time max_connections".split()
)
_BOOL_FIELDS = frozenset(
    "show_alert disable_notification protect_content drop_pending_updates"
    " disable_web_page_preview allow_sending_without_reply".split()
)
TRUE_METHODS = frozenset(  # accepted and answered with `true`, nothing else
    "close logout setchatmenubutton sendchataction setmydescription"
    " setmyshortdescription setmyname".split()
)
SEND_METHODS = frozenset(  # lower-cased; the methods that faults and limits apply to
    "sendmessage senddocument sendphoto".split()
)
_HTML_TAGS = frozenset(
    "b strong i em u ins s strike del a code pre tg-spoiler span blockquote".split()
)
_HTML_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][\w-]*)([^<>]*)>|&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|[<&]"
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """A Bot API error answer; ``code`` 400 prefixes the description with "Bad Request: "."""

    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.code, self.description = code, ("Bad Request: " if code == 400 else "") + description


def convert(key: str, value: Any) -> Any:
    """Decode one form/JSON parameter the way the Bot API interprets it."""
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(f"can't parse {key} JSON object") from None
    if key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value == "true" if key in _BOOL_FIELDS and value in ("true", "false") else value


async def read_params(request: web.Request) -> JSON:
    """The call's parameters from the query string and a form, multipart or JSON body."""
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
    return {key: convert(key, value) for key, value in raw.items()}


def html_visible_text(text: str) -> str:
    """Validate Telegram HTML; return the text the user would see."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for m in _HTML_TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        pos, name = m.end(), m.group(2) and m.group(2).lower()
        where = f"at byte offset {len(text[: m.start()].encode())}"
        if name and name not in _HTML_TAGS:
            raise ApiError(f'can\'t parse entities: Unsupported start tag "{name}" {where}')
        if name and m.group(1):
            if not stack or stack.pop() != name:
                raise ApiError(f'can\'t parse entities: Unmatched end tag "{name}" {where}')
        elif name:
            if name == "span" and "tg-spoiler" not in m.group(3):
                raise ApiError(f'can\'t parse entities: span needs class "tg-spoiler" {where}')
            stack.append(name)
        elif m.group(4):
            out.append(html.unescape(m.group(0)))
        else:
            raise ApiError(f"can't parse entities: Unescaped {m.group(0)!r} {where}")
    if stack:
        raise ApiError(f"can't parse entities: Can't find end tag for \"{stack[-1]}\"")
    return "".join([*out, text[pos:]])


def check_text(text: Any, parse_mode: Any, caption: bool = False) -> str:
    """The text (or caption) as sent, after Telegram's emptiness, length and HTML checks."""
    if caption and text is None:
        return ""
    visible = html_visible_text(text) if isinstance(text, str) and parse_mode == "HTML" else text
    if not isinstance(visible, str) or (not visible.strip() and not caption):
        raise ApiError("message text is empty")
    if len(visible) > (1024 if caption else 4096):
        raise ApiError("message caption is too long" if caption else "message is too long")
    return str(text)


def check_markup(markup: Any) -> None:
    """Reject an inline keyboard Telegram would reject."""
    for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
        for button in row:
            if len(str(button.get("callback_data", "")).encode()) > 64:
                raise ApiError("BUTTON_DATA_INVALID")
            if set(button) <= {"text"}:
                raise ApiError("text buttons are unallowed in the inline keyboard")


def buttons(entry: JSON) -> list[JSON]:
    """The inline buttons of a recorded bot message (none once deleted)."""
    markup = entry["reply_markup"]
    if entry["deleted"] or not isinstance(markup, dict):
        return []
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def message_key(params: JSON) -> tuple[int, int]:
    """``(chat_id, message_id)`` of the message a call refers to; ``(0, 0)`` when missing."""
    chat_id, message_id = params.get("chat_id"), params.get("message_id")
    if isinstance(chat_id, int) and isinstance(message_id, int):
        return chat_id, message_id
    return 0, 0


def _bytes_repr(obj: object) -> str:
    if isinstance(obj, bytes | bytearray):
        return f"<{len(obj)} bytes>"
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def reply(result: Any) -> web.Response:
    """A successful Bot API answer (file bytes shown as ``"<N bytes>"``)."""
    dumps = partial(json.dumps, default=_bytes_repr, ensure_ascii=False)
    return web.json_response({"ok": True, "result": result}, dumps=dumps)


def error(code: int, description: str, parameters: JSON | None = None) -> web.Response:
    """A Bot API error answer, with ``parameters`` (e.g. ``retry_after``) when given."""
    body: JSON = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


class Serving(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def serve_until_signal(emulator: Serving, banner: Callable[[], str]) -> None:
    """Standalone mode: start, print how to use it, serve until SIGINT or SIGTERM, stop."""
    await emulator.start()
    print(banner(), flush=True)
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await emulator.stop()
