"""Zalo Official Account adapter: signed OA webhook events become events; replies go out as
customer-service messages while the person's window is open, and reminders and review outcomes
outside it as ZNS template messages to the phone number they gave.

Facts taken from published pages (stored copies found with the `search` tool), and where:

- OAuth v4: `POST https://oauth.zaloapp.com/v4/oa/access_token`, form-encoded `refresh_token`,
  `app_id`, `grant_type=refresh_token`, the app's secret in a `secret_key` header; the answer
  has `access_token`, `refresh_token`, `expires_in`. An access token lives 25 hours; a refresh
  token lives 3 months and can be used ONCE (hexasync.vn, "Zalo OA API: Hướng dẫn cách lấy
  Access Token từ Refresh token"; beehexa.com/devdocs "Zalo OA tutorial: creating access token").
- Webhook: `X-ZEvent-Signature` is the SHA-256 of app id + the JSON body + the `timestamp`
  from that body + the OA secret key (not the app secret), in that order; the webhook must
  answer 200 within 2 seconds or Zalo retries for 12 hours (hainh.me, "Zalo API PHP: webhook
  callback Official Account"; tinhoc88.com copy). The header is `mac=` + the hex digest in
  public code; the bare digest is accepted too.
- Events: `event_name` `user_send_text` / `user_send_image` / `user_send_sticker` …, with
  `app_id`, `sender.id`, `recipient.id`, `timestamp`, `message.msg_id`, `message.text`,
  `message.attachments[].payload.url`; `follow` / `unfollow` with `follower.id` (public SDK
  types of webhook events, e.g. the ZaloWebhookEvent interfaces found by `search`).
- Customer-service messages: `POST https://openapi.zalo.me/v3.0/oa/message/cs` with
  `{"recipient": {"user_id"}, "message": {"text"}}`, text up to 2000 characters, allowed only
  after the user's interaction: 48 hours free, up to 7 days (@warriorteam/redai-zalo-sdk
  docs/MESSAGE_SERVICES.md and types/consultation.js on unpkg; hoangnd25/monorepo
  wip/zalo-platform-integration.md). Error -230 "User has not interacted with the OA in the
  past 7 days" and -213 are answered outside it (khoicodedao/Poto_platform docs/FIX_ERROR_230.md).
  Buttons (`attachment.payload.buttons`, type `oa.query.hide`, which send their payload back as
  the user's text) are NOT in the stored copies: the bot sends them (ZALO_OA_BUTTONS) and,
  should Zalo refuse a message with them, sends the numbered text alone.
- ZNS: `POST https://business.openapi.zalo.me/message/template` with `phone` (84…, the number
  linked to a Zalo account), `template_id`, `template_data` (exactly the approved template's
  parameters), `tracking_id` (redai-zalo-sdk dist/services/zns.service.js; docs.infinix.vn
  "Gửi ZNS"; docs.etelecom.vn "Send ZNS"). Quota per OA and day, sending hours 07:00–22:00 for
  customer-care and promotion tags (glama.ai "Zalo Business Reference: check_sending_rules",
  which names the conflicting announcements; so hours and quota are settings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.zalo import answer_from_menu, download_image, parse_command
from bot.channels.zalo_oa_api import OAClient, OAError, OANetworkError, TokenKeeper
from bot.channels.zalo_render import render_reply
from handlers.events import Attachment, Choice, Event, EventKind, Outcome, Reply
from handlers.i18n import N_
from models.inbox import Incoming
from models.menus import MenuEntry, remember_menu
from models.zalo_oa import touch_chat, unfollowed

if TYPE_CHECKING:
    from bot.channels.zalo_oa_send import OASender
    from bot.delivery import DeliveryWorker
    from bot.receiving import Recorder

log = logging.getLogger(__name__)

CHANNEL = "zalo_oa"
LABEL = N_("Zalo Official Account")  # as the export names the channel
SIGNATURE_HEADER = "X-ZEvent-Signature"
MAX_BUTTONS = 5  # more choices than this are answered by number only
BUTTON_TITLE = 100
EVENT_KINDS = {
    "user_send_text": EventKind.TEXT,
    "user_send_image": EventKind.PHOTO,
}
START_EVENTS = {"follow", "user_follow_oa"}
STOP_EVENTS = {"unfollow", "user_unfollow_oa"}

JSON = dict[str, Any]


def signature(app_id: str, body: str, timestamp: str, oa_secret: str) -> str:
    return hashlib.sha256(f"{app_id}{body}{timestamp}{oa_secret}".encode()).hexdigest()


def signed(header: str, app_id: str, body: str, payload: JSON, oa_secret: str) -> bool:
    given = header.strip().removeprefix("mac=")
    expected = signature(app_id, body, str(payload.get("timestamp", "")), oa_secret)
    return bool(oa_secret) and hmac.compare_digest(given.encode(), expected.encode())


def _person(payload: JSON) -> str:
    for part in ("sender", "follower", "user"):
        who = payload.get(part)
        if isinstance(who, dict) and who.get("id"):
            return str(who["id"])
    return ""


def to_event(payload: JSON) -> Event | None:
    """The neutral event of an OA webhook event; None for what the bot ignores (its own
    messages echoed back, events of nobody)."""
    name = str(payload.get("event_name") or "")
    person = _person(payload)
    if not person or name.startswith("oa_") or name in STOP_EVENTS:
        return None
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    assert isinstance(message, dict)
    update_id = message.get("msg_id") or f"{name}:{person}:{payload.get('timestamp', '')}"
    base = Event(CHANNEL, person, person, EventKind.OTHER, update_id=str(update_id)[:64])
    if name in START_EVENTS:  # following the OA is asking what it offers
        return replace(base, kind=EventKind.COMMAND, command="start")
    kind = EVENT_KINDS.get(name, EventKind.OTHER)
    text = message.get("text")
    if kind is EventKind.TEXT and isinstance(text, str) and text.strip():
        if text.startswith("/") and text[1:].strip():
            command, args = parse_command(text)
            return replace(base, kind=EventKind.COMMAND, command=command, args=args)
        return replace(base, kind=EventKind.TEXT, text=text)
    if kind is EventKind.PHOTO:
        return _image_event(base, message)
    return replace(base, kind=EventKind.OTHER if kind is EventKind.TEXT else kind)


def _image_event(base: Event, message: JSON) -> Event:
    """An image: its URL on Zalo's servers (the first attachment's payload) is also the id a
    long task downloads it by (the dossier); the message's text is its caption."""
    attachments = message.get("attachments")
    first = attachments[0] if isinstance(attachments, list) and attachments else {}
    payload = first.get("payload") if isinstance(first, dict) else None
    url = payload.get("url") if isinstance(payload, dict) else None
    caption = message.get("text")
    text = caption if isinstance(caption, str) and caption.strip() else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return replace(base, kind=EventKind.PHOTO, text=text)
    attachment = Attachment(
        file_name="anh-zalo.jpg", size=None, fetch=partial(download_image, url), file_id=url
    )
    return replace(base, kind=EventKind.PHOTO, attachment=attachment, text=text)


def incoming(payload: JSON) -> Incoming | None:
    event = to_event(payload)
    if event is None or event.update_id is None:
        return None
    return Incoming(CHANNEL, event.update_id, event.chat_id, event.user_id, payload)


def buttons_of(entries: list[MenuEntry], first: int) -> tuple[Choice, ...]:
    """A reply's numbered choices as OA buttons that send back their number."""
    numbered = [entry for entry in entries if entry.numbered]
    if not numbered or len(numbered) > MAX_BUTTONS:
        return ()
    return tuple(
        Choice(f"{first + index}. {entry.label}"[:BUTTON_TITLE], str(first + index))
        for index, entry in enumerate(numbered)
    )


def oa_messages(replies: list[Reply]) -> tuple[list[Reply], list[MenuEntry]]:
    """Replies as OA messages: the numbered text of the Zalo Bot channel, and, on the last
    message of each reply, its choices as buttons (payload: the number). Plain text, so the
    sender sends them as they are."""
    messages: list[Reply] = []
    menu: list[MenuEntry] = []
    for reply in replies:
        first = sum(entry.numbered for entry in menu) + 1
        rendered = render_reply(reply, first)
        texts = [Reply(text) for text in rendered.texts]
        buttons = buttons_of(rendered.menu, first)
        if texts and buttons:
            texts[-1] = Reply(texts[-1].text, choices=(buttons,))
        messages += texts
        menu += rendered.menu
    return messages, menu


class OAChannel:
    """Receives the OA webhook into the inbox, and is the OA side of the runtime
    (bot.inbox.Channel)."""

    name = CHANNEL

    def __init__(
        self,
        client: OAClient,
        keeper: TokenKeeper,
        delivery: DeliveryWorker,
        sender: OASender,
        *,
        app_id: str,
        oa_secret: str,
        clock: Callable[[], dt.datetime],
        sessionmaker: Any,
    ) -> None:
        self.client, self.keeper, self.delivery, self.sender = client, keeper, delivery, sender
        self.app_id, self.oa_secret, self.clock = app_id, oa_secret, clock
        self.sessionmaker = sessionmaker
        self.recorder: Recorder | None = None
        self._runner: web.AppRunner | None = None

    # --- receiving ------------------------------------------------------------------------

    async def start_webhook(self, path: str, listen: str, port: int) -> None:
        """Serve the webhook (its HTTPS URL is set in the Zalo developer console)."""
        app = web.Application(client_max_size=1024**2)
        app.router.add_post(path, self._on_webhook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, listen, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = raw.decode()
            payload = json.loads(body)
        except ValueError:
            return web.json_response({"error": -1, "message": "Bad Request"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": -1, "message": "Bad Request"}, status=400)
        header = request.headers.get(SIGNATURE_HEADER, "")
        if (
            not signed(header, self.app_id, body, payload, self.oa_secret)
            or str(payload.get("app_id", "")) != self.app_id
        ):
            log.warning("refused a Zalo OA webhook call whose signature is wrong")
            return web.json_response({"error": -1, "message": "Forbidden"}, status=403)
        try:  # answered once recorded (Zalo waits 2 s), handled by the inbox worker
            if str(payload.get("event_name")) in STOP_EVENTS:
                async with self.sessionmaker() as session, session.begin():
                    await unfollowed(session, _person(payload), self.clock())
            elif (record := incoming(payload)) is not None and self.recorder is not None:
                await self.recorder.record([record], self.tell)
        except Exception as error:
            log.warning("could not record a Zalo OA webhook event (%s)", error)
            return web.json_response({"error": -1, "message": "Unavailable"}, status=503)
        return web.json_response({"error": 0, "message": "Success"})

    # --- the runtime's side ---------------------------------------------------------------

    def decode(self, payload: JSON) -> tuple[Event, Any] | None:
        event = to_event(payload)
        return None if event is None else (event, None)

    async def prepare(self, session: AsyncSession, event: Event) -> Event:
        """They wrote: their customer-service window opens (again), then a typed number (or a
        button, which sends its number) becomes the choice it names."""
        await touch_chat(session, event.chat_id, self.clock())
        return await answer_from_menu(session, event)

    async def replies(self, session: AsyncSession, event: Event, outcome: Outcome) -> list[Reply]:
        replies = outcome.replies or ([Reply(outcome.toast)] if outcome.toast else [])
        messages, menu = oa_messages(replies)
        if messages:
            await remember_menu(session, CHANNEL, event.chat_id, menu, self.clock())
        return messages

    async def finish(self, session: AsyncSession, outcomes: Sequence[tuple[str, Outcome]]) -> None:
        return None

    async def acknowledge(self, extra: Any, outcome: Outcome) -> None:
        return None

    async def tell(self, chat_id: str, text: str) -> None:
        for message in oa_messages([Reply(text)])[0]:
            await self.keeper.call(partial(self._send_text, chat_id, message.text))

    async def _send_text(self, chat_id: str, text: str, token: str) -> str:
        return await self.client.send_cs(token, chat_id, text, [])

    async def fetch(self, file_id: str) -> bytes:
        """An image of an event, by its URL (the only files the bot reads from the OA)."""
        return await download_image(file_id)


__all__ = ["CHANNEL", "OAChannel", "OAError", "OANetworkError", "oa_messages", "signature"]
