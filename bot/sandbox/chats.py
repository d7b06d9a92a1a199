"""What the web chat shows of one persona's chat: the bot's messages (its Telegram HTML reduced
to Telegram's own tags), the person's messages as plain text, buttons, keyboard, files.

The bot escapes what people type before putting it in its HTML; the page still never trusts it:
every bot text goes through `safe_html`, and the person's own messages are sent as text."""

from __future__ import annotations

import functools
import html
from typing import Any

import nh3

JSON = dict[str, Any]

# The tags Telegram's HTML parse mode knows (core.telegram.org/bots/api#html-style).
TELEGRAM_TAGS = frozenset(
    "b strong i em u ins s strike del a code pre tg-spoiler span blockquote".split()
)


@functools.lru_cache(maxsize=4096)
def safe_html(text: str) -> str:
    """Telegram HTML as HTML a page may show: Telegram's tags kept, everything else text."""
    return nh3.clean(
        text,
        tags=set(TELEGRAM_TAGS),
        attributes={"a": {"href"}},
        allowed_classes={"span": {"tg-spoiler"}},
        url_schemes={"http", "https", "tg"},
        link_rel="noopener noreferrer",
    )


def _inline_buttons(markup: Any) -> list[list[JSON]]:
    if not isinstance(markup, dict):
        return []
    return [
        [
            {"text": str(button.get("text", "")), "data": button.get("callback_data")}
            for button in row
        ]
        for row in markup.get("inline_keyboard", [])
    ]


def _keyboard(markup: JSON) -> list[list[JSON]]:
    def request(button: JSON) -> str | None:
        if button.get("request_contact"):
            return "contact"
        return "location" if button.get("request_location") else None

    return [
        [{"text": str(button.get("text", "")), "request": request(button)} for button in row]
        for row in markup.get("keyboard", [])
    ]


def telegram_chat(persona: str, sent: list[JSON], mine: list[JSON]) -> JSON:
    """The chat as the page draws it, from the emulator's record of the bot's messages (`sent`,
    edits applied in place) and the person's own messages (`mine`); Telegram numbers both in one
    sequence per chat, so ordering by message id is the order they were sent in."""
    messages: list[JSON] = list(mine)
    keyboard: list[list[JSON]] | None = None
    for entry in sent:
        markup = entry["reply_markup"]
        if isinstance(markup, dict) and "keyboard" in markup:
            keyboard = _keyboard(markup)
        elif isinstance(markup, dict) and markup.get("remove_keyboard"):
            keyboard = None
        if entry["deleted"]:
            continue
        text = entry["text"] if entry["text"] is not None else entry["caption"]
        shown = (
            (safe_html(text) if entry["parse_mode"] == "HTML" else html.escape(text))
            if text
            else ""
        )
        message: JSON = {
            "id": entry["message_id"],
            "from": "bot",
            "html": shown,
            "buttons": _inline_buttons(markup),
        }
        if entry["document"]:
            message["document"] = {
                "name": entry["document"]["file_name"],
                "url": f"/api/chats/{persona}/files/{entry['message_id']}",
            }
        messages.append(message)
    messages.sort(key=lambda message: int(message["id"]))
    return {"persona": persona, "messages": messages, "keyboard": keyboard}


def zalo_chat(persona: str, sent: list[JSON], mine: list[JSON]) -> JSON:
    """A Zalo chat: plain text both ways (Zalo has no buttons and no HTML), in the emulator's
    order (its message ids count up, for the person's messages and the bot's alike)."""
    messages: list[JSON] = list(mine)
    for entry in sent:
        messages.append(
            {"id": entry["message_id"], "from": "bot", "text": entry["text"] or entry["caption"]}
        )
    messages.sort(key=lambda message: str(message["id"]))
    return {"persona": persona, "messages": messages, "keyboard": None}
