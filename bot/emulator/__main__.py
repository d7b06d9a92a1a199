"""Run the Telegram Bot API emulator standalone: ``python -m bot.emulator --port 8081``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TypeVar

from bot.emulator.faults import Faults, Limits
from bot.emulator.telegram import TelegramEmulator
from bot.emulator.wire import serve_until_signal

_T = TypeVar("_T")


def _json_option(build: Callable[[dict[str, object]], _T]) -> Callable[[str], _T]:
    """An argparse type: a JSON object turned into Faults or Limits (bad input: usage error)."""

    def parse(text: str) -> _T:
        try:
            return build(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.emulator",
        description="Serve a local fake Telegram Bot API for demos; drive it with curl.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8081, help="port (0 picks a free one)")
    parser.add_argument("--token", default="123456:TEST", help="bot token the bot must use")
    parser.add_argument("--bot-username", default="ocop_test_bot", help="the bot's @username")
    parser.add_argument(
        "--faults",
        type=_json_option(Faults.from_json),
        default=Faults(),
        metavar="JSON",
        help='faults injected into sends, e.g. \'{"rate_429": 0.1, "blocked_chats": [42]}\'',
    )
    parser.add_argument(
        "--limits",
        type=_json_option(Limits.from_json),
        default=Limits(),
        metavar="JSON",
        help="Telegram flood limits to enforce, e.g. '{\"overall_per_second\": 30}'",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emulator = TelegramEmulator(
        token=args.token, host=args.host, port=args.port, bot_username=args.bot_username
    )
    emulator.faults, emulator.limits = args.faults, args.limits

    def banner() -> str:
        base = f"http://{emulator.host}:{emulator.port}"
        send = f'curl -s {base}/_emulator/send_text -d \'{{"user_id": 1, "text": "/start"}}\''
        return (
            f"Telegram Bot API emulator listening on {base}\n"
            "Run the bot with:\n"
            f"  TELEGRAM_API_URL={emulator.api_url}\n"
            f"  TELEGRAM_FILE_URL={emulator.file_url}\n"
            f"  TELEGRAM_BOT_TOKEN={emulator.token}\n"
            "Talk to it as user 1 (routes in `python -m pydoc bot.emulator.control`):\n"
            f"  {send}\n"
            f"  curl -s '{base}/_emulator/messages?chat_id=1'\n"
            "Press Ctrl-C to stop."
        )

    await serve_until_signal(emulator, banner)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
