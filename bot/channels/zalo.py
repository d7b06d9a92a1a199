"""Zalo adapter: Zalo Bot API updates become events; replies become numbered text messages.

Updates arrive by long polling (`getUpdates`, one update per call, 408 when none came) or by a
webhook (`ZALO_WEBHOOK_URL`; Zalo sends the secret given to `setWebhook` back in the
`X-Bot-Api-Secret-Token` header). Either way each update is recorded in the inbox before it is
acknowledged (the next getUpdates, or the webhook's answer) and handled like a Telegram one by
the inbox worker (bot/inbox.py): its chat's updates in order, its replies through the outbox. A
redelivered message is dropped by its message id (the update id).

Zalo has no buttons, so a typed answer may stand for one: "2", or the option's words without
diacritics. `answer_from_menu` turns it into the CHOICE event of the button it names, using the
chat's menu (`models.menus`): the choices of the bot's last answer to the chat (none when that
answer offered none), or of a notification with choices that came after it. A typed answer never
abandons a form: while a form is in progress, a menu that arrived on its own (a reminder's
"register re-evaluation") does not capture typed answers; they go to the form, which matches
typed numbers and option words against its own question. Form buttons carry the form's version,
so a number typed to an outdated question is refused by the form, never misapplied.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.zalo_api import JSON, ZaloApiError, ZaloClient, ZaloNetworkError, wait_or_stop
from bot.channels.zalo_render import render, render_reply
from handlers.context import Services
from handlers.events import Attachment, Event, EventKind, FileTooLarge, Outcome, Reply
from handlers.i18n import N_, _, in_language
from handlers.router import command_words
from models.conversations import Conversation
from models.inbox import Incoming
from models.menus import menu_of, remember_menu
from models.text import fold

if TYPE_CHECKING:
    from bot.delivery import DeliveryWorker
    from bot.receiving import Recorder

CHANNEL = "zalo"
LABEL = N_("Zalo bot")  # as the export names the channel a registration came through
SECRET_HEADER = "X-Bot-Api-Secret-Token"
POLL_TIMEOUT = 30  # seconds one getUpdates call waits for an update
MAX_RETRY_DELAY = 60.0
# Images are downloaded up to the dossier's per-file limit (handlers/dossier.py).
IMAGE_LIMIT = 20 * 1024 * 1024
TELL_SECONDS = 2.0  # for each "send it again" when stopping with updates not recorded
EVENT_KINDS = {
    "message.text.received": EventKind.TEXT,
    "message.image.received": EventKind.PHOTO,
    "message.sticker.received": EventKind.OTHER,
    "message.unsupported.received": EventKind.OTHER,
}

log = logging.getLogger(__name__)


def parse_command(text: str) -> tuple[str, tuple[str, ...]]:
    """`/dangky`, `/start CODE`, and `/đăng ký` typed with its diacritics and space."""
    head, *args = text[1:].split()
    word = fold(head).replace(" ", "")
    whole = fold(text[1:]).replace(" ", "")
    if word not in command_words() and whole in command_words():
        return whole, ()
    return word, tuple(args)


def _message(update: JSON) -> JSON:
    message = update.get("message")
    return message if isinstance(message, dict) else {}


def sender_name(sender: JSON) -> str:
    """The sender's name: `display_name`, or `first_name` (and `last_name`) where an update
    carries those instead, or `name`."""
    given = " ".join(
        str(sender[part]).strip() for part in ("first_name", "last_name") if sender.get(part)
    )
    return str(sender.get("display_name") or given or sender.get("name") or "")


def to_event(update: JSON) -> Event | None:
    """The channel-neutral event of a private-chat update; None for what the bot ignores."""
    message = _message(update)
    sender, chat = message.get("from") or {}, message.get("chat") or {}
    if not sender.get("id") or not chat.get("id") or sender.get("is_bot"):
        return None
    if str(chat.get("chat_type") or "PRIVATE").upper() != "PRIVATE":
        return None
    message_id = message.get("message_id")
    base = Event(
        channel=CHANNEL,
        user_id=str(sender["id"]),
        chat_id=str(chat["id"]),
        kind=EventKind.OTHER,
        update_id=str(message_id) if message_id else None,
        display_name=sender_name(sender),
    )
    text = message.get("text")
    event_name = update.get("event_name")
    if event_name:
        kind = EVENT_KINDS.get(str(event_name), EventKind.OTHER)
    else:  # getUpdates answers seen without event_name: the message itself says what it is
        kind = EventKind.TEXT if isinstance(text, str) else EventKind.OTHER
        kind = EventKind.PHOTO if message.get("photo") else kind
    if kind is EventKind.PHOTO:
        return _image_event(base, message)
    if kind is not EventKind.TEXT:
        return replace(base, kind=kind)
    if not isinstance(text, str):
        return base
    if text.startswith("/") and text[1:].strip():
        command, args = parse_command(text)
        return replace(base, kind=EventKind.COMMAND, command=command, args=args)
    return replace(base, kind=EventKind.TEXT, text=text)


def _image_event(base: Event, message: JSON) -> Event:
    """An image: the update carries its URL on Zalo's servers (`photo_url`), which is also
    the id a long task downloads it by (the dossier), and its caption."""
    url, caption = message.get("photo_url"), message.get("caption")
    text = caption if isinstance(caption, str) and caption.strip() else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return replace(base, kind=EventKind.PHOTO, text=text)
    attachment = Attachment(
        file_name="anh-zalo.jpg", size=None, fetch=partial(download_image, url), file_id=url
    )
    return replace(base, kind=EventKind.PHOTO, attachment=attachment, text=text)


async def download_image(url: str) -> bytes:
    """The image at `url` (from an update Zalo sent, never typed by a user), at most
    IMAGE_LIMIT bytes: a larger one raises FileTooLarge before it is all read."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("not an image URL")
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
        response.raise_for_status()
        content = bytearray()
        async for chunk in response.content.iter_chunked(1 << 16):
            content += chunk
            if len(content) > IMAGE_LIMIT:
                raise FileTooLarge(url)
        return bytes(content)


async def answer_from_menu(session: AsyncSession, event: Event) -> Event:
    """A typed answer that names an entry of the chat's menu becomes that entry's button press
    (or, for a word of a reply keyboard, that word); anything else is left as it is. Any
    channel with numbered menus (Zalo Bot, Zalo OA) uses it for its own chats."""
    if event.kind is not EventKind.TEXT:
        return event
    menu = await menu_of(session, event.channel, event.chat_id)
    entry = menu.pick(event.text or "") if menu is not None else None
    if menu is None or entry is None:
        return event
    if menu.unsolicited:
        conversation = await session.get(Conversation, (event.channel, event.chat_id))
        if conversation is not None and conversation.flow:
            return event  # the form's question is what the user is answering
    if entry.data is None:
        return replace(event, text=entry.label)
    return replace(event, kind=EventKind.CHOICE, choice=entry.data, text=None)


class ZaloChannel:
    """Receives updates (polling or webhook) into the inbox, and is the Zalo side of the
    runtime (bot.inbox.Channel): decoding recorded updates, rendering replies as numbered text.
    """

    name = CHANNEL

    def __init__(
        self,
        client: ZaloClient,
        delivery: DeliveryWorker,
        services: Services,
        *,
        poll_timeout: int = POLL_TIMEOUT,
        retry_delay: float = 1.0,
    ) -> None:
        self.client, self.delivery, self.services = client, delivery, services
        self.poll_timeout, self.retry_delay = poll_timeout, retry_delay
        self.recorder: Recorder | None = None
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[Any]] = []
        # Taken from getUpdates (which hands an update out once) and not recorded yet.
        self._unrecorded: list[Incoming] = []
        self._runner: web.AppRunner | None = None
        self._secret = b""

    # --- receiving ------------------------------------------------------------------------

    def start_polling(self) -> None:
        self._loops.append(asyncio.create_task(self._poll(), name="zalo-polling"))

    async def start_webhook(self, url: str, secret: str, listen: str, port: int) -> None:
        """Serve the webhook at the path of `url`, then tell Zalo (retrying until it listens)."""
        self._secret = secret.encode()
        app = web.Application(client_max_size=1024**2)
        app.router.add_post(urlsplit(url).path or "/", self._on_webhook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, listen, port).start()
        register = partial(self.client.set_webhook, url, secret)
        self._loops.append(asyncio.create_task(self._until_done(register), name="zalo-webhook"))

    async def stop(self) -> None:
        """Stop receiving (what is recorded is handled by the inbox worker)."""
        self._stopping.set()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        await self._tell_unrecorded()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _until_done(self, call: Callable[[], Any]) -> bool:
        """Retry an API call with a growing delay; False when stopped before it succeeded."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await call()
                return True
            except (ZaloApiError, ZaloNetworkError) as error:
                failures += 1
                delay = min(MAX_RETRY_DELAY, self.retry_delay * 2 ** (failures - 1))
                log.warning("Zalo API call failed (%s); retrying in %.1f s", error, delay)
                if await wait_or_stop(self._stopping, delay):
                    break
        return False

    async def _poll(self) -> None:
        # getUpdates and a webhook exclude each other: make sure no webhook is left over.
        if not await self._until_done(self.client.delete_webhook):
            return
        failures = 0
        while not self._stopping.is_set():
            try:
                update = await self.client.get_update(self.poll_timeout)
            except Exception as error:  # network, API or a bug: the loop must keep polling
                failures += 1
                delay = min(MAX_RETRY_DELAY, self.retry_delay * 2 ** (failures - 1))
                known = isinstance(error, ZaloApiError | ZaloNetworkError)
                log.warning(
                    "Zalo getUpdates failed (%s); retrying in %.1f s",
                    error,
                    delay,
                    exc_info=not known,
                )
                await wait_or_stop(self._stopping, delay)
                continue
            failures = 0
            # Zalo's getUpdates hands an update out once: it is recorded before the next call.
            record = incoming(update) if update is not None else None
            if record is not None and self.recorder is not None:
                self._unrecorded.append(record)
                if await self.recorder.record_until_done([record], self.tell, self._stopping):
                    self._unrecorded.remove(record)

    async def _tell_unrecorded(self) -> None:
        """Stopping with updates Zalo handed out and the database never took (it was
        unavailable, and their senders were told to wait): Zalo will not send them again, so
        the promise is taken back."""
        chats, self._unrecorded = {record.chat_id for record in self._unrecorded}, []
        await self._ask_again(chats)

    async def _ask_again(self, chats: set[str]) -> None:
        """Zalo gives an update once: one the bot could not record is lost, and its sender is
        asked to send it again. Worded for the rare case that it was recorded after all (a
        stop cut in just after the commit)."""
        with in_language(None):
            text = _(
                "The system is busy and may not have taken your last message. If it gets no "
                "answer within a minute, please send it again."
            )
        for chat_id in chats:
            try:
                await asyncio.wait_for(self.tell(chat_id, text), timeout=TELL_SECONDS)
            except Exception as error:
                log.warning("could not ask chat %s to send its message again: %s", chat_id, error)

    async def _record(self, update: JSON) -> None:
        """A webhook call's update, recorded; if it cannot be, its sender is asked to send it
        again (Zalo posts an update once), not told it will be handled."""
        record = incoming(update)
        if record is not None and self.recorder is not None:
            try:
                await self.recorder.record([record])
            except Exception:
                await self._ask_again({record.chat_id})
                raise

    async def _on_webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not self._secret or not hmac.compare_digest(given, self._secret):
            log.warning("refused a Zalo webhook call without the right secret")
            return web.json_response({"ok": False, "description": "Forbidden"}, status=403)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "description": "Bad Request"}, status=400)
        # The update itself, or wrapped like an API answer: {"ok": true, "result": {...}}.
        update = body.get("result", body) if isinstance(body, dict) else None
        if not isinstance(update, dict):
            return web.json_response({"ok": False, "description": "Bad Request"}, status=400)
        try:  # answered once recorded, not handled: the inbox worker does that
            await self._record(update)
        except Exception as error:
            log.warning("could not record a Zalo webhook update (%s)", error)
            return web.json_response({"ok": False, "description": "Unavailable"}, status=503)
        return web.json_response({"message": "Success"})

    # --- the runtime's side ---------------------------------------------------------------

    def decode(self, payload: JSON) -> tuple[Event, Any] | None:
        event = to_event(payload)
        return None if event is None else (event, None)

    async def prepare(self, session: AsyncSession, event: Event) -> Event:
        return await answer_from_menu(session, event)

    async def replies(self, session: AsyncSession, event: Event, outcome: Outcome) -> list[Reply]:
        """The replies as Zalo text, rendered here in the user's language (which handle_event
        made current); typed answers now refer to their choices (or to none)."""
        replies = outcome.replies or ([Reply(outcome.toast)] if outcome.toast else [])
        rendered = render(replies)
        if rendered.texts:
            now = self.services.clock()
            await remember_menu(session, CHANNEL, event.chat_id, rendered.menu, now)
        # Escaped again: the sender renders each outbox message as HTML-less text too.
        return [Reply(html.escape(text, quote=False)) for text in rendered.texts]

    async def finish(self, session: AsyncSession, outcomes: Sequence[tuple[str, Outcome]]) -> None:
        return None

    async def acknowledge(self, extra: Any, outcome: Outcome) -> None:
        return None

    async def tell(self, chat_id: str, text: str) -> None:
        for chunk in render_reply(Reply(text)).texts:
            await self.client.send_message(chat_id, chunk)

    async def fetch(self, file_id: str) -> bytes:
        """An image of an update, by its URL (the only files Zalo Bot API updates carry)."""
        return await download_image(file_id)


def incoming(update: JSON) -> Incoming | None:
    """A Zalo update as the inbox records it; None for what the bot never handles."""
    event = to_event(update)
    if event is None or event.update_id is None:
        return None
    return Incoming(CHANNEL, event.update_id, event.chat_id, event.user_id, update)
