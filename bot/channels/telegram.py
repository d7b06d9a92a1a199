"""Telegram adapter: PTB updates become events; replies become messages with keyboards."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import (
    Bot,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.channels.errors import Blocked, Flood, Rejected, Transient
from bot.channels.text import split_message
from handlers.events import Attachment, Event, EventKind, FileTooLarge, Outcome, Reply, Request
from handlers.i18n import N_
from models.inbox import Incoming
from models.outbox import live_buttons

if TYPE_CHECKING:
    from bot.delivery import DeliveryWorker, Send

CHANNEL = "telegram"
LABEL = N_("Telegram chat")  # as the export names the channel a registration came through
log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


def _message_event(message: JSONDict, base: Event, bot: Bot | None) -> Event:
    contact, location, text = message.get("contact"), message.get("location"), message.get("text")
    if isinstance(contact, dict):
        contact_user = contact.get("user_id")
        return replace(
            base,
            kind=EventKind.CONTACT,
            phone=str(contact.get("phone_number") or ""),
            contact_user_id=str(contact_user) if contact_user else None,
        )
    if isinstance(location, dict):
        return replace(
            base,
            kind=EventKind.LOCATION,
            latitude=float(location.get("latitude") or 0.0),
            longitude=float(location.get("longitude") or 0.0),
        )
    if isinstance(text, str):
        if text.startswith("/") and text[1:].split():
            head, *args = text[1:].split()
            return replace(
                base, kind=EventKind.COMMAND, command=head.split("@")[0].lower(), args=tuple(args)
            )
        return replace(base, kind=EventKind.TEXT, text=text)
    caption = message.get("caption") if isinstance(message.get("caption"), str) else None
    photo = message.get("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):
        # Telegram sends every size it made; the last is the largest.
        largest = photo[-1]
        attachment = _attachment(bot, largest, f"anh-{largest.get('file_unique_id', '')}.jpg")
        if attachment is None:
            return replace(base, kind=EventKind.PHOTO, text=caption)
        return replace(base, kind=EventKind.PHOTO, attachment=attachment, text=caption)
    document = message.get("document")
    if isinstance(document, dict):
        attachment = _attachment(bot, document, str(document.get("file_name") or "file"))
        if attachment is not None:
            return replace(base, kind=EventKind.DOCUMENT, attachment=attachment, text=caption)
    return base


def _attachment(bot: Bot | None, file: JSONDict, file_name: str) -> Attachment | None:
    if not file.get("file_id"):
        return None
    file_id, size = str(file["file_id"]), file.get("file_size")
    return Attachment(
        file_name=file_name,
        size=int(size) if isinstance(size, int) else None,
        fetch=partial(_download, bot, file_id),
        file_id=file_id,
    )


async def _download(bot: Bot | None, file_id: str) -> bytes:
    if bot is None:
        raise LookupError("no bot to download files with")
    try:
        file = await bot.get_file(file_id)
    except BadRequest as error:
        if "too big" in error.message.lower():  # the Bot API serves files up to 20 MB
            raise FileTooLarge(file_id) from error
        raise
    return bytes(await file.download_as_bytearray())


@dataclass(frozen=True)
class Pressed:
    """What answering a pressed button needs: the query's id and the pressed message."""

    query_id: str
    chat_id: int | None
    message_id: int | None


def event_of(
    update: JSONDict, bot: Bot | None = None, bot_username: str | None = None
) -> tuple[Event, Pressed | None] | None:
    """The channel-neutral event of a private-chat update as the Bot API's JSON (no PTB
    objects: building them was a sixth of the CPU of an update), and the pressed button;
    None for what the bot ignores."""
    query, message = update.get("callback_query"), update.get("message")
    if isinstance(query, dict):
        sender = query.get("from") or {}
        pressed_message = query.get("message") or {}
        chat = pressed_message.get("chat") or {"id": sender.get("id"), "type": "private"}
    elif isinstance(message, dict):
        sender, chat = message.get("from") or {}, message.get("chat") or {}
    else:
        return None
    if not sender.get("id") or sender.get("is_bot") or chat.get("type") != ChatType.PRIVATE:
        return None
    name = " ".join(str(sender[part]) for part in ("first_name", "last_name") if sender.get(part))
    base = Event(
        channel=CHANNEL,
        kind=EventKind.OTHER,
        user_id=str(sender["id"]),
        chat_id=str(chat["id"]),
        update_id=str(update.get("update_id")),
        display_name=name,
        username=sender.get("username"),
        language_code=sender.get("language_code"),
        deep_link=f"https://t.me/{bot_username}?start=" if bot_username else None,
    )
    if isinstance(query, dict):
        data = query.get("data")
        pressed = Pressed(
            str(query.get("id") or ""),
            (pressed_message.get("chat") or {}).get("id"),
            pressed_message.get("message_id"),
        )
        return replace(base, kind=EventKind.CHOICE, choice=str(data or "")), pressed
    assert isinstance(message, dict)
    return _message_event(message, base, bot), None


def to_event(update: Update, bot_username: str | None = None) -> Event | None:
    """The event of a PTB Update (for callers that have one)."""
    decoded = event_of(update.to_dict(), None, bot_username)
    return None if decoded is None else decoded[0]


def markup_json(reply: Reply) -> JSONDict | None:
    """The reply's keyboard as the Bot API's JSON (sent as is by `api_call`)."""
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


_AS_IS = (str, int, dict)  # exactly these types: a bool, an enum or a list goes by from_input


async def api_call(
    bot: Bot, method: str, read_timeout: float | None = None, **parameters: Any
) -> Any:
    """A Bot API call whose answer is read as JSON, if at all.

    Straight to the bot's public `BaseRequest.post`: `Bot.do_api_request` adds a warning per
    call, defaults this bot does not use and parameter objects of its own; with the returned
    Message turned into objects, that was a third of a reply's CPU (bench/README.md,
    "conversation"). Errors are PTB's own (RetryAfter, BadRequest, ...), raised by the request.
    The one private name used, `RequestParameter` (RequestData's element type, which encodes a
    value as the Bot API wants it), is pinned by tests/test_telegram_call.py."""
    data = RequestData(
        [
            # A text, a number or a ready JSON object is sent as it is (what `from_input` makes
            # of it, after a dozen type checks per value: a thirtieth of a reply's CPU).
            RequestParameter(name, value, None)
            if type(value) in _AS_IS
            else RequestParameter.from_input(name, value)
            for name, value in parameters.items()
            if value is not None
        ]
    )
    url = f"{bot.base_url}/{method}"
    if read_timeout is None:
        return await bot.request.post(url, request_data=data)
    return await bot.request.post(url, request_data=data, read_timeout=read_timeout)


def split_reply(reply: Reply) -> list[Reply]:
    """The reply as messages Telegram takes: its text in parts, the keyboard on the last."""
    if reply.document is not None or len(reply.text) <= MessageLimit.MAX_TEXT_LENGTH:
        return [reply]
    *first, last = split_message(reply.text, MessageLimit.MAX_TEXT_LENGTH)
    return [Reply(chunk) for chunk in first] + [replace(reply, text=last)]


@contextmanager
def delivery_errors() -> Iterator[None]:
    """PTB's errors of a send as the delivery worker's (bot/channels/errors.py)."""
    try:
        yield
    except RetryAfter as error:
        retry = error.retry_after
        seconds = retry if isinstance(retry, dt.timedelta) else dt.timedelta(seconds=retry)
        raise Flood(seconds, str(error)) from error
    except Forbidden as error:
        raise Blocked(str(error)) from error
    except BadRequest as error:  # before TelegramError: PTB makes it a NetworkError
        raise Rejected(str(error)) from error
    except TelegramError as error:  # timeouts, 5xx, connection resets, anything else PTB says
        raise Transient(str(error)) from error


PARTS_MEMORY = 1000  # long messages whose first parts went out and whose last has not yet


def telegram_sender(bot: Bot) -> Send:
    """Sends one outbox message with a bot that has no rate limiter of its own (the delivery
    worker paces). Text goes as the Bot API's JSON and its answer is read as JSON: building
    PTB's Message of every answer was a tenth of the delivery's CPU (bench/README.md).

    A text longer than one message (a notification: replies come split, `split_reply`) goes in
    parts; when one fails, the retry starts from it, not again from the first."""
    parts_sent: dict[tuple[str, str], int] = {}

    async def send(chat_id: str, reply: Reply) -> str:
        with delivery_errors():
            return await send_parts(chat_id, reply)

    async def send_parts(chat_id: str, reply: Reply) -> str:
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
        key = (chat_id, reply.text)
        for number, chunk in enumerate(first[parts_sent.get(key, 0) :], parts_sent.get(key, 0)):
            await api_call(bot, "sendMessage", chat_id=int(chat_id), text=chunk, parse_mode="HTML")
            if len(parts_sent) >= PARTS_MEMORY:
                parts_sent.clear()
            parts_sent[key] = number + 1
        answer = await api_call(
            bot,
            "sendMessage",
            chat_id=int(chat_id),
            text=last,
            parse_mode="HTML",
            reply_markup=markup_json(reply),
        )
        parts_sent.pop(key, None)
        return str(answer.get("message_id", "")) if isinstance(answer, dict) else ""

    return send


def incoming(
    update: JSONDict, bot: Bot | None = None, bot_username: str | None = None
) -> Incoming | None:
    """An update as the inbox records it, keyed by its chat and sender; None for what the bot
    never handles (no sender, a bot, a group, an edit). Its decoded event goes with it."""
    decoded = event_of(update, bot, bot_username)
    if decoded is None or not isinstance(update.get("update_id"), int):
        return None
    event = decoded[0]
    return Incoming(
        CHANNEL, str(update["update_id"]), event.chat_id, event.user_id, update, decoded
    )


class TelegramChannel:
    """The Telegram side of the runtime (bot.inbox.Channel): decoding recorded updates,
    answering pressed buttons, telling a chat something at once."""

    name = CHANNEL

    def __init__(self, bot: Bot, delivery: DeliveryWorker) -> None:
        self.bot, self.delivery = bot, delivery

    def decode(self, payload: JSONDict) -> tuple[Event, Any] | None:
        return event_of(payload, self.bot, self.bot.username)

    async def prepare(self, session: AsyncSession, event: Event) -> Event:
        return event

    async def replies(self, session: AsyncSession, event: Event, outcome: Outcome) -> list[Reply]:
        """A reply longer than one message becomes one outbox message per part, so that each
        part is sent (and written down as sent) once, as Zalo's are."""
        return [part for reply in outcome.replies for part in split_reply(reply)]

    async def finish(self, session: AsyncSession, outcomes: Sequence[tuple[str, Outcome]]) -> None:
        """Questions answered by typing: their buttons go once the next question is out. The
        batch's chats' last sent messages are read in one statement (one per event was a
        tenth of the conversation benchmark's loop, bench/README.md)."""
        chats = {chat_id for chat_id, outcome in outcomes if outcome.spends_buttons}
        live = await live_buttons(session, CHANNEL, chats)
        for chat_id, outcome in outcomes:
            if outcome.spends_buttons and chat_id in live:
                outcome.spent_buttons = (chat_id, live[chat_id])

    async def acknowledge(self, pressed: Pressed | None, outcome: Outcome) -> None:
        if outcome.spent_buttons is not None:
            chat_id, message_id = outcome.spent_buttons
            await self._take_buttons(int(chat_id), int(message_id))
        if pressed is None:
            return
        await api_call(
            self.bot, "answerCallbackQuery", callback_query_id=pressed.query_id, text=outcome.toast
        )
        if pressed.message_id is None or pressed.chat_id is None:
            return
        if outcome.edited is not None:
            # The pressed message now says what was done (a review card's new status).
            try:
                await api_call(
                    self.bot,
                    "editMessageText",
                    chat_id=pressed.chat_id,
                    message_id=pressed.message_id,
                    text=outcome.edited,
                    parse_mode="HTML",
                )
            except BadRequest:
                log.debug("message %s could not be edited", pressed.message_id)
        elif outcome.replies and not outcome.keep_buttons:
            # The pressed message's buttons are spent; fresh ones come with the reply.
            await self._take_buttons(pressed.chat_id, pressed.message_id)

    async def _take_buttons(self, chat_id: int, message_id: int) -> None:
        try:
            await api_call(
                self.bot, "editMessageReplyMarkup", chat_id=chat_id, message_id=message_id
            )
        except BadRequest:
            log.debug("buttons of message %s already gone", message_id)

    async def tell(self, chat_id: str, text: str) -> None:
        await api_call(self.bot, "sendMessage", chat_id=int(chat_id), text=text)

    async def fetch(self, file_id: str) -> bytes:
        return await _download(self.bot, file_id)
