"""The Zalo side of a bot process: API client, update loop and outbox worker, started and
stopped together. bot/app.py puts it on the runtime, beside Telegram or alone
(`WithoutTelegram`); the runtime runs the same scheduled jobs either way.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.errors import Blocked, Flood, Rejected, Transient
from bot.channels.zalo import CHANNEL, ZaloChannel
from bot.channels.zalo_api import ZaloApiError, ZaloClient, ZaloNetworkError
from bot.channels.zalo_render import render
from bot.delivery import DeliveryWorker, Send
from bot.settings import Settings
from handlers.context import Services
from handlers.events import Reply
from handlers.i18n import in_language
from models.db import create_sessionmaker
from models.menus import remember_menu
from models.outbox import Pacing
from models.users import language_of

log = logging.getLogger(__name__)

# Zalo asks for a webhook secret of 8 to 256 characters.
SECRET_LENGTH = range(8, 257)


# What the Bot API's error codes mean for a send. The published Bot API documentation
# (bot.zaloplatforms.com/docs: "Phản hồi từ API", sendMessage) lists the answer's fields
# (`ok`, `error_code`, `description`) but no table of codes, and none for "the user blocked the
# bot". So no code marks a chat unreachable unless the operator names one they observed
# (ZALO_BLOCKED_CODES); any other refusal is logged with Zalo's own description and recorded.
RETRIED_CODES = frozenset({408, 500, 502, 503, 504})
REFUSED_CODES = frozenset({400, 404})  # documented HTTP meanings: the request itself is wrong


async def _send_text(
    client: ZaloClient, chat_id: str, text: str, blocked_codes: frozenset[int] = frozenset()
) -> str:
    """sendMessage, with Zalo's failures raised as the delivery errors (bot/channels/errors.py):
    the worker retries, backs off or gives up as it does for every channel."""
    try:
        return await client.send_message(chat_id, text)
    except ZaloNetworkError as error:
        raise Transient(str(error)) from None
    except ZaloApiError as error:
        if error.code == 429:
            seconds = int(error.parameters.get("retry_after") or 1)
            raise Flood(dt.timedelta(seconds=max(1, seconds)), error.description) from None
        if error.code in blocked_codes:  # observed as "the user blocked the bot"
            raise Blocked(error.description) from None
        if error.code in RETRIED_CODES:
            raise Transient(f"{error.code}: {error.description}") from None
        if error.code not in REFUSED_CODES:
            log.warning(
                "Zalo refused a message with error %s, which the bot does not know: %s",
                error.code,
                error.description,
            )
        raise Rejected(f"{error.code}: {error.description}") from None


def zalo_sender(
    client: ZaloClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    reader: async_sessionmaker[AsyncSession],
    clock: Callable[[], dt.datetime],
    blocked_codes: frozenset[int] = frozenset(),
) -> Send:
    """Sends one outbox reply as Zalo text, in the recipient's language (for the menu hints),
    and remembers its choices so that the recipient can answer them with a number."""

    async def send(chat_id: str, reply: Reply) -> str:
        async with reader() as session:
            language = await language_of(session, CHANNEL, chat_id)
        with in_language(language):
            rendered = render([reply])
        if rendered.menu:
            # Remembered before sending: the recipient may answer "1" the instant it arrives.
            async with sessionmaker() as session, session.begin():
                await remember_menu(
                    session, CHANNEL, chat_id, rendered.menu, clock(), unsolicited=True
                )
        message_id = ""
        for text in rendered.texts:
            message_id = await _send_text(client, chat_id, text, blocked_codes)
        return message_id

    return send


class ZaloBot:
    """The Zalo channel of a bot process: API client, delivery worker, the runtime's adapter
    (`channel`), and the receiving side (`start`/`stop`, a bot.runtime.Receiver). Several
    processes may share a database."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        services: Services,
        *,
        poll_timeout: int = 30,
        retry_delay: float = 1.0,
        pacing: Pacing | None = None,
    ) -> None:
        if not settings.zalo_bot_token:
            raise ValueError("ZALO_BOT_TOKEN is not set")
        webhook_secret = settings.zalo_webhook_secret or ""
        if settings.zalo_webhook_url and len(webhook_secret) not in SECRET_LENGTH:
            raise ValueError("ZALO_WEBHOOK_SECRET must be 8 to 256 characters long")
        self.settings = settings
        self.client = ZaloClient(
            settings.zalo_bot_token, settings.zalo_api_url, settings.ocop_delivery_timeout
        )
        sessionmaker = create_sessionmaker(engine)
        reader = create_sessionmaker(engine, read_only=True)
        send = zalo_sender(
            self.client,
            sessionmaker,
            reader,
            services.clock,
            frozenset(settings.zalo_blocked_codes),
        )
        self.worker = DeliveryWorker(
            sessionmaker, CHANNEL, send, pacing or Pacing(settings.ocop_delivery_rate)
        )
        self.channel = ZaloChannel(
            self.client,
            self.worker,
            services,
            poll_timeout=poll_timeout,
            retry_delay=retry_delay,
        )

    def wake(self) -> None:
        """Messages for Zalo were queued: deliver now rather than at the next poll."""
        self.worker.wake()

    async def open(self) -> None:
        """Connect the API client (before the runtime starts delivering)."""
        await self.client.start()
        try:
            me = await self.client.get_me()
            log.debug("Zalo bot %s connected", me.get("account_name") or me.get("id") or "")
        except ZaloApiError as error:
            if error.code in (401, 403):
                await self.client.close()
                raise ValueError(f"Zalo refused ZALO_BOT_TOKEN: {error.description}") from None
            log.warning("Zalo getMe failed (%s); carrying on", error)
        except ZaloNetworkError as error:  # the loops retry until Zalo is reachable
            log.warning("Zalo is not reachable yet (%s); carrying on", error)

    async def start(self) -> None:
        """Start receiving."""
        settings = self.settings
        if settings.zalo_webhook_url:
            await self.channel.start_webhook(
                settings.zalo_webhook_url,
                settings.zalo_webhook_secret or "",
                settings.zalo_webhook_listen,
                settings.zalo_webhook_port,
            )
        else:
            self.channel.start_polling()

    async def stop(self) -> None:
        """Stop receiving; delivery goes on until the runtime stops it."""
        await self.channel.stop()

    async def close(self) -> None:
        await self.client.close()
