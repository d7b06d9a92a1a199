"""The emulator's ``/_emulator/`` HTTP routes: act as users, read what the bot did, set faults.

For demos and for tests in another process. JSON bodies; replies ``{"ok": true, "result":
...}``, or status 400 with ``{"ok": false, "description": ...}``::

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
    GET  /_emulator/failures               every failed Bot API call: method, error_code, params
    GET  /_emulator/wait?chat_id=1&count=2[&timeout=10]   wait until the bot sent that many
    GET  /_emulator/document?chat_id=1&message_id=4      download a document the bot sent
    GET  /_emulator/faults          the faults injected into sends (see ``faults.Faults``)
    POST /_emulator/faults          replaces them: {"rate_429": 0.1, "blocked_chats": [42]}
    GET  /_emulator/limits          the flood limits enforced (see ``faults.Limits``)
    POST /_emulator/limits          replaces them: {"overall_per_second": 30}
    GET  /_emulator/stats[?window=1]   sent/failed counts, throttled, injected, max_in_window,
                                       min_interval_per_chat
    GET  /_emulator/webhook         {"info": getWebhookInfo, "attempts": every webhook POST
                                    (update_id, chat, status, error, at), "settings": timeout
                                    and back-off in seconds}
    POST /_emulator/webhook         changes the settings: {"timeout": 10, "retry_initial": 0.05,
                                    "retry_max": 2}; answers as GET

e.g. ``curl -s localhost:8081/_emulator/send_text -d '{"user_id": 1, "text": "/start"}'``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from bot.emulator.faults import Faults, Limits
from bot.emulator.wire import JSON, error, reply

if TYPE_CHECKING:
    from bot.emulator.telegram import TelegramEmulator


_USER_ACTIONS = frozenset(
    "send_text press press_button share_contact share_location send_photo send_document".split()
)


def _user_action(emulator: TelegramEmulator, action: str, body: JSON) -> JSON:
    """Act as a user: ``action`` is one of ``_USER_ACTIONS``, ``body`` its keyword arguments."""
    if action == "send_document":
        encoded, text = body.pop("content_base64", None), body.pop("content", "")
        body["content"] = base64.b64decode(encoded) if encoded else text.encode()
    method: Callable[..., JSON] = getattr(emulator, action)
    return method(**body)


def _stats(emulator: TelegramEmulator, window: float) -> JSON:
    return {
        "sent": len(emulator.sent),
        "calls": len(emulator.calls),
        "failures": len(emulator.failures),
        "throttled": emulator.throttled,
        "injected": dict(emulator.injected),
        "max_in_window": emulator.max_in_window(window),
        "window": window,
        "min_interval_per_chat": emulator.min_interval_per_chat(),
        # Seconds from the first to the last accepted send (throughput = sends / span).
        "span": emulator.send_span(),
    }


async def _settings(emulator: TelegramEmulator, action: str, request: web.Request) -> JSON:
    """GET or POST (replace) the faults or the limits."""
    if action == "faults":
        if request.method == "POST":
            emulator.faults = Faults.from_json(await request.json())
        return emulator.faults.to_json()
    if request.method == "POST":
        emulator.limits = Limits.from_json(await request.json())
    return emulator.limits.to_json()


async def _answer(emulator: TelegramEmulator, action: str, request: web.Request) -> web.Response:
    query = request.query
    if request.method == "POST" and action in _USER_ACTIONS:
        return reply(_user_action(emulator, action, await request.json()))
    if action == "messages":
        chat = query.get("chat_id")
        return reply(emulator.messages_to(int(chat)) if chat else emulator.sent)
    if action == "calls":
        return reply([{"method": name, "params": p} for name, p in emulator.calls])
    if action == "failures":
        return reply([{"method": m, "error_code": c, "params": p} for m, c, p in emulator.failures])
    if action == "wait":
        count, timeout = int(query["count"]), float(query.get("timeout", 10))
        return reply(await emulator.wait_for_messages(int(query["chat_id"]), count, timeout))
    if action == "document":
        key = (int(query["chat_id"]), int(query["message_id"]))
        if (entry := emulator._entries.get(key)) is None or not entry["document"]:
            raise AssertionError(f"no document from the bot at {key}")
        disposition = f'attachment; filename="{entry["document"]["file_name"]}"'
        return web.Response(
            body=entry["document"]["content"], headers={"Content-Disposition": disposition}
        )
    if action in ("faults", "limits"):
        return reply(await _settings(emulator, action, request))
    if action == "webhook":
        if request.method == "POST":
            emulator.configure_webhook(**await request.json())
        return reply(
            {
                "info": emulator._api_getwebhookinfo({}),
                "attempts": emulator.webhook_attempts,
                "settings": emulator.webhook_settings(),
            }
        )
    if action == "stats":
        return reply(_stats(emulator, float(query.get("window", 1.0))))
    return error(404, f"Not Found: no emulator action {action!r}")


async def handle_control(emulator: TelegramEmulator, request: web.Request) -> web.Response:
    """Serve ``/_emulator/{action}``; a failed action answers 400 with the reason."""
    try:
        return await _answer(emulator, request.match_info["action"], request)
    except (AssertionError, TimeoutError, KeyError, TypeError, ValueError) as exc:
        description = f"{type(exc).__name__}: {exc}"
        return web.json_response({"ok": False, "description": description}, status=400)
