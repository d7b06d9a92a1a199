"""Telegram adapter: PTB updates become events; replies become messages with keyboards."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

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
from telegram.ext import BaseUpdateProcessor, ContextTypes
from telegram.warnings import PTBUserWarning

from bot.batch import Batcher
from bot.channels.text import split_message
from handlers.context import Services
from handlers.events import Attachment, Event, EventKind, Outcome, Reply, Request
from handlers.router import Prepared, handle_event

CHANNEL = "telegram"
log = logging.getLogger(__name__)

# `_call` below uses the generic method on purpose, to skip parsing answers nobody reads.
warnings.filterwarnings(
    "ignore",
    message=r"Please use 'Bot\.(sendMessage|editMessageReplyMarkup|answerCallbackQuery)'",
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


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> None:
    if reply.document is not None:
        await bot.send_document(
            chat_id,
            document=reply.document.content,
            filename=reply.document.file_name,
            caption=reply.text[: MessageLimit.CAPTION_LENGTH] or None,
            reply_markup=markup(reply),
        )
        return
    chunks = split_message(reply.text, MessageLimit.MAX_TEXT_LENGTH)
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        await _call(
            bot,
            "sendMessage",
            chat_id=chat_id,
            text=chunk,
            parse_mode=ParseMode.HTML,
            reply_markup=markup_json(reply) if last else None,
        )


async def _call(bot: Bot, method: str, **parameters: Any) -> None:
    """A Bot API call whose answer the bot does not need.

    PTB's public `do_api_request` without a return type skips turning the returned Message into
    objects, which was a third of the CPU of a reply (bench/README.md, "conversation"). It goes
    through the same request, error handling and rate limiter as `send_message`."""
    given = {name: value for name, value in parameters.items() if value is not None}
    await bot.do_api_request(method, given)


async def deliver(
    bot: Bot, chat_id: int, outcome: Outcome, query: CallbackQuery | None = None
) -> None:
    if query is not None:
        await _call(bot, "answerCallbackQuery", callback_query_id=query.id, text=outcome.toast)
        if query.message is not None and outcome.replies:
            # The pressed message's buttons are spent; fresh ones come with the reply.
            try:
                await _call(
                    bot,
                    "editMessageReplyMarkup",
                    chat_id=query.message.chat.id,
                    message_id=query.message.message_id,
                )
            except BadRequest:
                log.debug("buttons of message %s already gone", query.message.message_id)
    for reply in outcome.replies:
        await send_reply(bot, chat_id, reply)


class ChatOrder(BaseUpdateProcessor):
    """Updates of different chats are handled concurrently (their database work is committed
    together, bot/batch.py); the updates of one chat strictly one after the other, each one's
    replies sent before the next begins."""

    # PTB takes a slot before `do_process_update`, so an update waiting for an earlier one of
    # its chat holds a slot: with this many, one chat would need thousands of queued messages
    # to hold up the others. Database work is bounded by the batches, not by this number.
    def __init__(self, max_concurrent_updates: int = 4096) -> None:
        super().__init__(max_concurrent_updates)
        self._last: dict[int, asyncio.Future[None]] = {}

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _chat_key(update)
        if key is None:
            await coroutine
            return
        before = self._last.get(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[key] = done
        try:
            if before is not None:
                # Shielded: if this update is cancelled while waiting, the earlier one's
                # future must stay intact for it to settle.
                await asyncio.shield(before)
            await coroutine
        finally:
            if not done.done():
                done.set_result(None)
            if self._last.get(key) is done:
                del self._last[key]


def _chat_key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    return update.effective_user.id if update.effective_user is not None else None


def make_update_handler(
    batcher: Batcher,
    services: Services,
    queued: Callable[[], None] = lambda: None,
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
    """The one PTB callback: event in, committed (with the events that arrived with it), then
    replies out.

    `queued` is told when the event queued notices in the outbox (to wake the delivery)."""

    async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        event = to_event(update, context.bot.username)
        if event is None:
            return
        chat_id = int(event.chat_id)

        async def progress(text: str) -> None:
            await context.bot.send_message(chat_id, text)

        async def work(session: AsyncSession, prepared: Prepared) -> Outcome:
            return await handle_event(session, services, event, prepared, progress)

        outcome = await batcher.run(event, work)
        if outcome.notices:
            queued()
        await deliver(context.bot, chat_id, outcome, update.callback_query)

    return on_update
