"""The Zalo emulator's ``/_emulator/`` routes, and ``python -m bot.emulator.zalo_control`` to
serve it for a demo. JSON bodies; replies ``{"ok": true, "result": ...}``, or status 400::

    POST /_emulator/send_text     {"user_id": "u1", "text": "dang ky"}  (+ "display_name")
    POST /_emulator/send_image    {"user_id": "u1"}
    POST /_emulator/send_sticker  {"user_id": "u1"}
    POST /_emulator/send_unsupported  {"user_id": "u1"}
    GET  /_emulator/messages[?chat_id=u1]             what the bot sent
    GET  /_emulator/wait?chat_id=u1&count=2[&timeout=10]  wait until the bot sent that many
    GET  /_emulator/calls                             every Bot API call with its parameters
    GET  /_emulator/webhook                           the webhook set by the bot, if any

e.g. ``curl -s localhost:8082/_emulator/send_text -d '{"user_id": "u1", "text": "dang ky"}'``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.emulator.zalo import ZaloEmulator

_USER_ACTIONS = ("send_text", "send_image", "send_sticker", "send_unsupported")


async def _answer(emulator: ZaloEmulator, action: str, request: web.Request) -> Any:
    query = request.query
    if request.method == "POST" and action in _USER_ACTIONS:
        body = await request.json()
        return getattr(emulator, action)(**body)
    if action == "messages":
        chat = query.get("chat_id")
        return emulator.messages_to(chat) if chat else emulator.sent
    if action == "wait":
        count, timeout = int(query["count"]), float(query.get("timeout", 10))
        return await emulator.wait_for_messages(query["chat_id"], count, timeout)
    if action == "calls":
        return [{"method": name, "params": params} for name, params in emulator.calls]
    if action == "webhook":
        return emulator.webhook
    raise KeyError(f"no emulator action {action!r}")


def add_control_routes(app: web.Application, emulator: ZaloEmulator) -> None:
    async def control(request: web.Request) -> web.Response:
        try:
            result = await _answer(emulator, request.match_info["action"], request)
        except (KeyError, TypeError, ValueError, TimeoutError) as exc:
            description = f"{type(exc).__name__}: {exc}"
            return web.json_response({"ok": False, "description": description}, status=400)
        return web.json_response({"ok": True, "result": result})

    app.router.add_route("*", "/_emulator/{action}", control)


async def _serve(host: str, port: int, token: str) -> None:
    from bot.emulator.wire import serve_until_signal
    from bot.emulator.zalo import ZaloEmulator

    emulator = ZaloEmulator(token=token, host=host, port=port)

    def banner() -> str:
        base = f"http://{emulator.host}:{emulator.port}"
        return (
            f"Zalo Bot API emulator listening on {base}\n"
            "Run the bot with:\n"
            f"  ZALO_API_URL={emulator.api_url}\n"
            f"  ZALO_BOT_TOKEN={emulator.token}\n"
            "Talk to it as user u1:\n"
            f'  curl -s {base}/_emulator/send_text -d \'{{"user_id": "u1", "text": "menu"}}\'\n'
            f"  curl -s '{base}/_emulator/messages?chat_id=u1'\n"
            "Press Ctrl-C to stop."
        )

    await serve_until_signal(emulator, banner)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.emulator.zalo_control",
        description="Serve a local fake Zalo Bot API for demos; drive it with curl.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8082, help="port (0 picks a free one)")
    parser.add_argument("--token", default="2000000001:ZALO-TEST-TOKEN", help="the bot token")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
