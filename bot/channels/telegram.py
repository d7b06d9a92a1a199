"""Telegram adapter: PTB updates become events; replies become messages with keyboards."""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import BadRequest
from telegram.warnings import PTBUserWarning

from bot.channels.text import split_message
from handlers.events import Attachment, Event, EventKind, Outcome, Reply, Request
from models.inbox import Incoming

if TYPE_CHECKING:
    from bot.delivery import DeliveryWorker, Send

CHANNEL = "telegram"
log = logging.getLogger(__name__)

# `_call` below and the poller use the generic method on purpose, to skip parsing answers
# nobody reads (or reads as JSON).
warnings.filterwarnings(
    "ignore",
    message=r"Please use 'Bot\."
    r"(sendMessage|editMessageReplyMarkup|answerCallbackQuery|getUpdates)'",
    category=PTBUserWarning,
)

JSONDict = dict[str, Any]
ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


def _message_event(message: Message, base: Event) -> Event:
    if message.contact is not None:
        contact_user = message.contact.user_id
        return replace(
            base,
            kind=EventKind.CONTACT,
            phone=message.contact.phone_number,
            contact_user_id=str(contact_user) if contact_user else None,
        )
    if message.location is not None:
        return replace(
            base,
            kind=EventKind.LOCATION,
            latitude=message.location.latitude,
            longitude=message.location.longitude,
        )
    if message.text is not None:
        if message.text.startswith("/"):
            head, *args = message.text[1:].split()
            return replace(
                base, kind=EventKind.COMMAND, command=head.split("@")[0].lower(), args=tuple(args)
            )
        return replace(base, kind=EventKind.TEXT, text=message.text)
    if message.photo:
        return replace(base, kind=EventKind.PHOTO)
    if message.document is not None:
        document = message.document
        attachment = Attachment(
            file_name=document.file_name or "file",
            size=document.file_size,
            fetch=partial(_download, message.get_bot(), document.file_id),
            file_id=document.file_id,
        )
        return replace(base, kind=EventKind.DOCUMENT, attachment=attachment)
    return base


async def _download(bot: Bot, file_id: str) -> bytes:
    file = await bot.get_file(file_id)
    return bytes(await file.download_as_bytearray())


def to_event(update: Update, bot_username: str | None = None) -> Event | None:
    """The channel-neutral event of a private-chat update; None for what the bot ignores."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or user.is_bot or chat.type != ChatType.PRIVATE:
        return None
    base = Event(
        channel=CHANNEL,
        kind=EventKind.OTHER,
        user_id=str(user.id),
        chat_id=str(chat.id),
        update_id=str(update.update_id),
        display_name=user.full_name,
        username=user.username,
        language_code=user.language_code,
        deep_link=f"https://t.me/{bot_username}?start=" if bot_username else None,
    )
    if update.callback_query is not None:
        return replace(base, kind=EventKind.CHOICE, choice=update.callback_query.data or "")
    if update.message is not None:
        return _message_event(update.message, base)
    return None


def markup_json(reply: Reply) -> JSONDict | None:
    """The reply's keyboard as the Bot API's JSON (sent as is by `_call`)."""
    if reply.choices:
        return {
            "inline_keyboard": [
                [{"text": choice.label, "callback_data": choice.data} for choice in row]
                for row in reply.choices
            ]
        }
    if reply.keyboard:
        rows = [
            [
                {"text": button.label, "request_contact": True}
                if button.request is Request.CONTACT
                else {"text": button.label, "request_location": True}
                if button.request is Request.LOCATION
                else {"text": button.label}
                for button in row
            ]
            for row in reply.keyboard
        ]
        return {"keyboard": rows, "resize_keyboard": True}
    if reply.remove_keyboard:
        return {"remove_keyboard": True}
    return None


def markup(reply: Reply) -> ReplyMarkup | None:
    """The same keyboard as PTB objects, for PTB's own send methods."""
    data = markup_json(reply)
    if data is None:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.de_json(data, None)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.de_json(data, None)
    return ReplyKeyboardRemove()


async def _call(bot: Bot, method: str, **parameters: Any) -> None:
    """A Bot API call whose answer the bot does not need.

    PTB's public `do_api_request` without a return type skips turning the returned Message into
    objects, which was a third of the CPU of a reply (bench/README.md, "conversation")."""
    given = {name: value for name, value in parameters.items() if value is not None}
    await bot.do_api_request(method, given)


def telegram_sender(bot: Bot) -> Send:
    """Sends one outbox message with a bot that has no rate limiter of its own (the delivery
    worker paces). Text goes as the Bot API's JSON and its answer is read as JSON: building
    PTB's Message of every answer was a tenth of the delivery's CPU (bench/README.md)."""

    async def send(chat_id: str, reply: Reply) -> str:
        if reply.document is not None:
            message = await bot.send_document(
                int(chat_id),
                document=reply.document.content,
                filename=reply.document.file_name,
                caption=reply.text[: MessageLimit.CAPTION_LENGTH] or None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup(reply),
            )
            return str(message.message_id)
        *first, last = split_message(reply.text, MessageLimit.MAX_TEXT_LENGTH)
        for chunk in first:
            await _call(bot, "sendMessage", chat_id=int(chat_id), text=chunk, parse_mode="HTML")
        answer = await bot.do_api_request(
            "sendMessage",
            {
                name: value
                for name, value in {
                    "chat_id": int(chat_id),
                    "text": last,
                    "parse_mode": "HTML",
                    "reply_markup": markup_json(reply),
                }.items()
                if value is not None
            },
        )
        return str(answer.get("message_id", "")) if isinstance(answer, dict) else ""

    return send


def incoming(update: JSONDict) -> Incoming | None:
    """An update as the inbox records it, keyed by its chat and sender; None for what the bot
    never handles (no sender, a bot, a group). Read from the JSON, without building objects."""
    update_id = update.get("update_id")
    for kind in ("message", "edited_message", "callback_query"):
        body = update.get(kind)
        if not isinstance(body, dict) or not isinstance(update_id, int):
            continue
        sender = body.get("from") or {}
        message = body.get("message") if kind == "callback_query" else body
        chat = (message or {}).get("chat") or {"id": sender.get("id"), "type": "private"}
        if not sender.get("id") or sender.get("is_bot") or chat.get("type") != ChatType.PRIVATE:
            return None
        return Incoming(CHANNEL, str(update_id), str(chat["id"]), str(sender["id"]), update)
    return None


class TelegramChannel:
    """The Telegram side of the runtime (bot.inbox.Channel): decoding recorded updates,
    answering pressed buttons, telling a chat something at once."""

    name = CHANNEL

    def __init__(self, bot: Bot, delivery: DeliveryWorker) -> None:
        self.bot, self.delivery = bot, delivery

    def decode(self, payload: JSONDict) -> tuple[Event, Any] | None:
        update = Update.de_json(payload, self.bot)
        event = to_event(update, self.bot.username)
        if event is None:
            return None
        return event, update.callback_query

    async def prepare(self, session: AsyncSession, event: Event) -> Event:
        return event

    async def replies(self, session: AsyncSession, event: Event, outcome: Outcome) -> list[Reply]:
        return list(outcome.replies)

    async def acknowledge(self, query: CallbackQuery | None, outcome: Outcome) -> None:
        if query is None:
            return
        await _call(self.bot, "answerCallbackQuery", callback_query_id=query.id, text=outcome.toast)
        if query.message is not None and outcome.replies:
            # The pressed message's buttons are spent; fresh ones come with the reply.
            try:
                await _call(
                    self.bot,
                    "editMessageReplyMarkup",
                    chat_id=query.message.chat.id,
                    message_id=query.message.message_id,
                )
            except BadRequest:
                log.debug("buttons of message %s already gone", query.message.message_id)

    async def tell(self, chat_id: str, text: str) -> None:
        await _call(self.bot, "sendMessage", chat_id=int(chat_id), text=text)

    async def fetch(self, file_id: str) -> bytes:
        return await _download(self.bot, file_id)
