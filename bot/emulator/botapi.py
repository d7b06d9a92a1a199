"""The Bot API methods the emulator implements, as ``_api_<lower-case name>`` methods.

Each takes the decoded parameters and returns the ``result`` or raises ``ApiError``; the HTTP
dispatch in ``telegram`` finds them by name. Methods in ``wire.TRUE_METHODS`` have no method here.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from aiohttp import web

from bot.emulator.webhook import TERMINATED, WEBHOOK_ACTIVE, WebhookDelivery
from bot.emulator.wire import (
    JSON,
    NOT_MODIFIED,
    ApiError,
    check_markup,
    check_text,
    message_key,
)

MAX_COMMANDS = 100
COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
DEFAULT_SCOPE = json.dumps({"type": "default"})
_CHAT_SCOPES = ("chat", "chat_administrators", "chat_member")


def _menu_key(params: JSON) -> tuple[str, str]:
    """A menu's scope (canonical JSON) and language, as setMyCommands takes them."""
    scope = params.get("scope") or {"type": "default"}
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise ApiError("can't parse BotCommandScope")
    if scope["type"] in _CHAT_SCOPES and not isinstance(scope.get("chat_id"), int):
        raise ApiError("chat not found")
    language = params.get("language_code") or ""
    if not isinstance(language, str) or len(language) not in (0, 2):
        raise ApiError("invalid language code specified")
    return json.dumps(scope, sort_keys=True), language
# getFile refuses larger files ("file is too big"), as the Bot API does (its getFile docs).
DOWNLOAD_LIMIT = 20 * 1024 * 1024


class BotApiMethods(WebhookDelivery):
    """getUpdates, sending, editing and deleting messages, callback answers, files, commands
    (the webhook methods are in ``webhook``)."""

    async def _get_updates(self, params: JSON, request: web.Request) -> list[JSON]:
        if self.webhook is not None:
            raise ApiError(WEBHOOK_ACTIVE, 409)
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:  # acknowledges what was delivered before
            self._queue = [
                p for p in self._queue if not (p.delivered and p.update["update_id"] < offset)
            ]
            self._pulse()
        await self._wait_until(
            lambda: bool(self._queue) or self._stopping or self.webhook is not None,
            float(params.get("timeout") or 0),
        )
        if self.webhook is not None:
            raise ApiError(TERMINATED, 409)
        if self._stopping or request.transport is None or request.transport.is_closing():
            return []  # the poller is gone: keep the updates for the next one
        batch = self._queue[: int(params.get("limit") or 100)]
        for pending in batch:
            pending.delivered = True
        return [copy.deepcopy(pending.update) for pending in batch]

    def _api_getme(self, params: JSON) -> JSON:
        return self.bot_user

    def _api_getmycommands(self, params: JSON) -> list[JSON]:
        return self.menus.get(_menu_key(params), [])

    def _api_setmycommands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
            raise ApiError("commands must be a list of at most 100 BotCommand")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not COMMAND_NAME.fullmatch(name):
                raise ApiError("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise ApiError("BOT_COMMAND_DESCRIPTION_INVALID")
        key = _menu_key(params)
        self.menus[key] = [dict(command) for command in commands]
        if key == (DEFAULT_SCOPE, ""):
            self.commands = list(self.menus[key])
        return True

    def _api_deletemycommands(self, params: JSON) -> bool:
        key = _menu_key(params)
        self.menus.pop(key, None)
        if key == (DEFAULT_SCOPE, ""):
            self.commands = []
        return True

    def menu_for(self, chat_id: int | None = None, language: str = "") -> list[str]:
        """The command names a user would see, as Telegram picks the menu: the chat's own
        scope, then the private-chats scope, then the default; each in the user's language
        if one was set, else without language."""
        scopes = [json.dumps({"type": "all_private_chats"}), DEFAULT_SCOPE]
        if chat_id is not None:
            scopes.insert(0, json.dumps({"chat_id": chat_id, "type": "chat"}, sort_keys=True))
        for scope in scopes:
            for code in (language, ""):
                if (scope, code) in self.menus:
                    return [command["command"] for command in self.menus[(scope, code)]]
        return []

    def _record(self, method: str, params: JSON, content: JSON, **extra: Any) -> JSON:
        chat_id, markup = params.get("chat_id"), params.get("reply_markup")
        if not isinstance(chat_id, int):
            raise ApiError("chat_id is empty" if chat_id in (None, "") else "chat not found")
        check_markup(markup)
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
        text = check_text(params.get("text"), params.get("parse_mode"))
        return self._record("sendMessage", params, {"text": text})

    def _api_senddocument(self, params: JSON) -> JSON:
        kind = "photo" if "photo" in params else "document"
        upload = params.get(kind)
        if isinstance(upload, dict):
            name, content = upload.get("file_name") or kind, upload["content"]
        elif isinstance(upload, str) and upload in self._files:  # re-sending by file_id
            name, content = upload, self._files[upload]["content"]
        else:
            raise ApiError("wrong file identifier/HTTP URL specified")
        body: JSON = {}
        if caption := check_text(params.get("caption"), params.get("parse_mode"), caption=True):
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
        entry, markup = self._entries.get(message_key(params)), params.get("reply_markup")
        if entry is None or entry["deleted"]:
            raise ApiError("message to edit not found")
        text = entry["text"]
        if "text" in params:
            if text is None:
                raise ApiError("there is no text in the message to edit")
            text = check_text(params["text"], params.get("parse_mode"))
            entry["parse_mode"] = params.get("parse_mode")
        check_markup(markup)
        if text == entry["text"] and markup == entry["reply_markup"]:
            raise ApiError(NOT_MODIFIED)
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
        key = message_key(params)
        if (entry := self._entries.get(key)) is not None and not entry["deleted"]:
            entry["deleted"] = True
        elif key in self._user_messages:
            self._user_messages.discard(key)
        else:
            raise ApiError("message to delete not found")
        self._pulse()
        return True

    def _api_answercallbackquery(self, params: JSON) -> bool:
        if params.get("callback_query_id") not in self._callback_ids:
            raise ApiError("query is too old and response timeout expired or query ID is invalid")
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
            raise ApiError("invalid file_id")
        if len(stored["content"]) > DOWNLOAD_LIMIT:  # the Bot API serves files up to 20 MB
            raise ApiError("file is too big")
        return {
            "file_id": params["file_id"],
            "file_unique_id": stored["file_unique_id"],
            "file_size": len(stored["content"]),
            "file_path": stored["file_path"],
        }
