"""How an outbox message reaches a person over the Zalo OA, and what came of it: inside their
window as customer-service messages; outside it, a reminder or review outcome as a ZNS template
message to their phone (within the sending hours and the day's quota), else on the person's
other channels; every attempt recorded in `zalo_oa_sends`."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.errors import Deferred, HandedOver, Rejected, Transient
from bot.channels.zalo_oa import CHANNEL, oa_messages
from bot.channels.zalo_oa_api import OAClient, OAError, OANetworkError, TokenKeeper
from bot.delivery import reply_of
from bot.settings import Settings
from handlers.events import Reply
from handlers.i18n import in_language
from handlers.notices import serialize_choices
from models import keys
from models.base import utcnow
from models.menus import remember_menu
from models.outbox import Claimed, enqueue
from models.users import User, language_of
from models.zalo_oa import OASend, last_interaction, other_channels, phone_of, reserve_zns

log = logging.getLogger(__name__)

# Answers to a customer-service message that mean "outside the window" (see zalo_oa.py).
WINDOW_ERRORS = frozenset({-213, -230})


@dataclass(frozen=True)
class ZnsRules:
    """The OA's ZNS templates (kind -> id, and template parameter -> value name), sending hours
    in the OA's time zone, and its daily quota."""

    templates: dict[str, str] = field(default_factory=dict)
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    opens: dt.time = dt.time(7)
    closes: dt.time = dt.time(22)
    daily_quota: int = 1000
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Ho_Chi_Minh"))

    def values(self, kind: str, given: dict[str, Any]) -> dict[str, str]:
        mapping = self.params.get(kind) or {name: name for name in given}
        return {param: str(given.get(name, "")) for param, name in mapping.items()}

    def closed_until(self, now: dt.datetime) -> dt.datetime | None:
        """When sending opens next, if it is closed now."""
        local = now.astimezone(self.timezone)
        if self.opens <= local.time() < self.closes:
            return None
        day = local.date() if local.time() < self.opens else local.date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, self.opens, self.timezone).astimezone(dt.UTC)

    def tomorrow(self, now: dt.datetime) -> dt.datetime:
        day = now.astimezone(self.timezone).date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, self.opens, self.timezone).astimezone(dt.UTC)


def zns_rules(settings: Settings) -> ZnsRules:
    templates, params = {}, {}
    for kind, template, mapping in (
        ("reminder", settings.zalo_zns_reminder_template, settings.zalo_zns_reminder_params),
        ("outcome", settings.zalo_zns_outcome_template, settings.zalo_zns_outcome_params),
    ):
        if template:
            templates[kind] = template
            if mapping:
                params[kind] = mapping
    opens, closes = (dt.time.fromisoformat(t.strip()) for t in settings.zalo_zns_hours.split("-"))
    return ZnsRules(
        templates,
        params,
        opens,
        closes,
        settings.zalo_zns_daily_quota,
        ZoneInfo(settings.ocop_timezone),
    )


class OASender:
    """The delivery worker's `send_claimed` for the OA."""

    def __init__(
        self,
        client: OAClient,
        keeper: TokenKeeper,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], dt.datetime],
        rules: ZnsRules,
        *,
        window: dt.timedelta,
        buttons: bool = True,
    ) -> None:
        self.client, self.keeper, self.sessionmaker, self.clock = (
            client,
            keeper,
            sessionmaker,
            clock,
        )
        self.rules, self.window, self.buttons = rules, window, buttons
        self.queued: Callable[[], None] = lambda: None  # other channels' messages were queued

    async def __call__(self, message: Claimed) -> str:
        now = self.clock()
        async with self.sessionmaker() as session:
            chat = await last_interaction(session, message.chat_id)
        if chat is not None and chat.following and now - chat.last_interaction_at < self.window:
            try:
                return await self._in_window(message)
            except OAError as error:
                if error.code not in WINDOW_ERRORS:
                    await self._note(message, "cs", "failed", error=error)
                    raise Rejected(f"{error.code}: {error.message}") from None
                log.info("Zalo OA says chat %s is outside its window", message.chat_id)
        return await self._outside_window(message, now)

    # --- inside the window: customer-service messages -------------------------------------

    async def _in_window(self, message: Claimed) -> str:
        if message.reply:  # rendered for the OA already (OAChannel.replies)
            messages = [reply_of(message)]
        else:
            messages = await self._render_notice(message)
        message_id = ""
        for reply in messages:
            buttons = [(c.label, c.data) for row in reply.choices for c in row]
            message_id = await self._send_cs(message.chat_id, reply.text, buttons)
        await self._note(message, "cs", "sent", message_id=message_id)
        return message_id

    async def _render_notice(self, message: Claimed) -> list[Reply]:
        async with self.sessionmaker() as session:
            language = await language_of(session, CHANNEL, message.chat_id)
        with in_language(language):
            messages, menu = oa_messages([reply_of(message)])
        if menu:  # remembered before sending: the answer "1" may come at once
            async with self.sessionmaker() as session, session.begin():
                await remember_menu(
                    session, CHANNEL, message.chat_id, menu, self.clock(), unsolicited=True
                )
        return messages

    async def _send_cs(self, chat_id: str, text: str, buttons: list[tuple[str, str]]) -> str:
        offered = buttons if self.buttons else []
        try:
            return str(
                await self.keeper.call(
                    lambda token: self.client.send_cs(token, chat_id, text, offered)
                )
            )
        except OANetworkError as error:
            raise Transient(str(error)) from None
        except OAError as error:
            if not offered or error.code in WINDOW_ERRORS:
                raise
            # The numbered text works alone; buttons are a convenience on top of it.
            log.warning(
                "Zalo OA refused buttons (%s: %s); sending the text", error.code, error.message
            )
            return str(
                await self.keeper.call(lambda token: self.client.send_cs(token, chat_id, text, []))
            )

    # --- outside it: ZNS by phone, or the person's other channels --------------------------

    async def _outside_window(self, message: Claimed, now: dt.datetime) -> str:
        template = message.template or {}
        kind = str(template.get("kind") or "")
        template_id = self.rules.templates.get(kind)
        async with self.sessionmaker() as session:
            phone = await phone_of(session, CHANNEL, message.chat_id) if template_id else None
        if not template_id or not phone:
            why = "no ZNS template for it" if not template_id else "no phone number on file"
            return await self._fall_back(message, f"outside the Zalo OA window, {why}")
        if (opens := self.rules.closed_until(now)) is not None:
            await self._note(
                message,
                "zns",
                "deferred",
                template_id=template_id,
                phone=phone,
                text="outside the ZNS sending hours",
            )
            raise Deferred(self._due(opens, now), "outside the ZNS sending hours")
        reserved = self._row(message, "zns", "sending", template_id=template_id, phone=phone)
        async with self.sessionmaker() as session, session.begin():
            taken = await reserve_zns(session, reserved, self.rules.daily_quota)
        if not taken:
            if await self._others(message):
                return await self._fall_back(message, "the day's ZNS quota is used up")
            await self._note(
                message,
                "zns",
                "deferred",
                template_id=template_id,
                phone=phone,
                text="the day's ZNS quota is used up",
            )
            tomorrow = self._due(self.rules.tomorrow(now), now)
            raise Deferred(tomorrow, "the day's ZNS quota is used up")
        return await self._send_zns(message, reserved.id, template_id, kind, phone, template)

    async def _send_zns(
        self,
        message: Claimed,
        reservation: int,
        template_id: str,
        kind: str,
        phone: str,
        template: dict[str, Any],
    ) -> str:
        values = self.rules.values(kind, dict(template.get("values") or {}))
        tracking = f"{message.id}-{uuid.uuid4().hex[:12]}"
        number = phone.removeprefix("+")
        try:
            data = await self.keeper.call(
                lambda token: self.client.send_zns(token, number, template_id, values, tracking)
            )
        except OANetworkError as error:
            await self._settle(reservation, "failed", tracking, text=str(error))
            raise Transient(str(error)) from None
        except OAError as error:
            await self._settle(reservation, "failed", tracking, error=error)
            log.warning("ZNS refused message %s: %s %s", message.id, error.code, error.message)
            raise Rejected(f"ZNS {error.code}: {error.message}") from None
        message_id = str(data.get("msg_id") or "")
        await self._settle(reservation, "sent", tracking, message_id=message_id)
        return message_id[:32] or tracking[:32]

    async def _settle(
        self,
        reservation: int,
        status: str,
        tracking: str,
        *,
        message_id: str | None = None,
        error: OAError | None = None,
        text: str | None = None,
    ) -> None:
        """What came of a ZNS send that held one of the day's messages (a failed one gives
        it back)."""
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(OASend, reservation)
            if row is not None:
                row.status = status
                _outcome(row, tracking, message_id, error, text)

    def _due(self, when: dt.datetime, now: dt.datetime) -> dt.datetime:
        """`when` (on the services' clock, like the window and the hours) on the delivery's
        clock, which times the outbox (the same clock, but in tests)."""
        return utcnow() + (when - now)

    async def _others(self, message: Claimed) -> list[User]:
        async with self.sessionmaker() as session:
            return await other_channels(session, CHANNEL, message.chat_id)

    async def _fall_back(self, message: Claimed, why: str) -> str:
        """The same message for the person on their other channels; failed here if none."""
        others = await self._others(message)
        if not others:
            await self._note(message, "cs", "failed", text=why)
            raise Rejected(why)
        now = utcnow()  # the outbox is timed on the delivery's clock
        async with self.sessionmaker() as session, session.begin():
            for user in others:
                reply = reply_of(message)
                await enqueue(
                    session,
                    key=keys.forwarded(message.key or str(message.id), user.channel),
                    channel=user.channel,
                    chat_id=user.chat_id,
                    user_id=user.id,
                    text=reply.text,
                    choices=serialize_choices(reply),
                    document_name=message.document_name,
                    document=message.document,
                    now=now,
                    template=message.template,
                )
        self.queued()
        names = ", ".join(sorted({user.channel for user in others}))
        await self._note(message, "cs", "fallback", text=f"{why}; sent on {names}")
        raise HandedOver(f"{why}; sent on {names} instead")

    async def _note(
        self,
        message: Claimed,
        route: str,
        status: str,
        *,
        template_id: str | None = None,
        phone: str | None = None,
        tracking: str | None = None,
        message_id: str | None = None,
        error: OAError | None = None,
        text: str | None = None,
    ) -> None:
        row = self._row(message, route, status, template_id=template_id, phone=phone)
        _outcome(row, tracking, message_id, error, text)
        async with self.sessionmaker() as session, session.begin():
            session.add(row)

    def _row(
        self,
        message: Claimed,
        route: str,
        status: str,
        *,
        template_id: str | None = None,
        phone: str | None = None,
    ) -> OASend:
        now = self.clock()
        return OASend(
            outbox_id=message.id,
            chat_id=message.chat_id,
            route=route,
            status=status,
            template_id=template_id,
            phone_tail=phone[-3:] if phone else None,
            local_day=now.astimezone(self.rules.timezone).date(),
            created_at=now,
        )


def _outcome(
    row: OASend,
    tracking: str | None,
    message_id: str | None,
    error: OAError | None,
    text: str | None,
) -> None:
    row.tracking_id = tracking
    row.message_id = message_id[:64] if message_id else None
    row.error_code = error.code if error else None
    why = error.message if error else text
    row.error = why[:300] if why else None
