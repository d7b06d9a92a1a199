"""An in-process fake Telegram Bot API for the benchmarks: a PTB request class that answers the
calls the bot makes (getMe, sendMessage, answerCallbackQuery, ...) without a network and without
keeping what was sent, plus builders of incoming updates."""

from __future__ import annotations

import json
import time
from typing import Any

from telegram.request import BaseRequest, RequestData

BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "OCOP",
    "username": "ocop_bench_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
JSON = dict[str, Any]


class LocalBotApi(BaseRequest):
    """Answers every Bot API call at once; counts the messages sent, stores none of them."""

    def __init__(self) -> None:
        self.sent = 0
        self.calls = 0

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def _message(self, params: JSON) -> JSON:
        self.sent += 1
        chat = int(params.get("chat_id", 0))
        message: JSON = {
            "message_id": self.sent,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private", "first_name": "Ba"},
            "from": BOT_USER,
        }
        if "text" in params:
            message["text"] = params["text"]
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if isinstance(markup, dict) and "inline_keyboard" in markup:  # Telegram echoes only these
            message["reply_markup"] = markup
        return message

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        self.calls += 1
        name = url.rsplit("/", 1)[-1].lower()
        params = request_data.parameters if request_data is not None else {}
        result: Any = True
        if name == "getme":
            result = BOT_USER
        elif name.startswith("send") or name.startswith("edit"):
            result = self._message(params)
        elif name == "getupdates":
            result = []
        return 200, json.dumps({"ok": True, "result": result}).encode()


def text_update(update_id: int, user_id: int, text: str) -> JSON:
    """A private-chat text message from `user_id` (chat id = user id), as Telegram sends it."""
    person = {"id": user_id, "is_bot": False, "first_name": "Ba", "language_code": "vi"}
    message: JSON = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "Ba"},
        "from": person,
        "text": text,
    }
    if text.startswith("/"):
        command = len(text.split()[0])
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": command}]
    return {"update_id": update_id, "message": message}
