"""The Zalo Official Account channel of a bot process: API client, tokens, delivery worker, the
runtime's adapter and its webhook, started and stopped together (like bot/channels/zalo_bot.py
for the Bot Platform)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.zalo_oa import CHANNEL, OAChannel
from bot.channels.zalo_oa_api import OAClient, OAError, OANetworkError, TokenKeeper
from bot.channels.zalo_oa_send import OASender, zns_rules
from bot.delivery import DeliveryWorker
from bot.settings import Settings
from handlers.events import Reply
from models.db import create_sessionmaker
from models.outbox import Pacing

log = logging.getLogger(__name__)


class OABot:
    """The OA channel of a bot process: API client, tokens, delivery worker, the runtime's
    adapter (`channel`) and its receiver (`start`/`stop`)."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        clock: Callable[[], dt.datetime],
        *,
        pacing: Pacing | None = None,
    ) -> None:
        required = {
            "ZALO_OA_APP_ID": settings.zalo_oa_app_id,
            "ZALO_OA_APP_SECRET": settings.zalo_oa_app_secret,
            "ZALO_OA_SECRET_KEY": settings.zalo_oa_secret_key,
            "ZALO_OA_TOKEN_KEY": settings.zalo_oa_token_key,
        }
        if missing := [name for name, value in required.items() if not value]:
            raise ValueError(f"the Zalo OA channel needs {', '.join(missing)}")
        self.settings = settings
        self.client = OAClient(
            settings.zalo_oa_oauth_url,
            settings.zalo_oa_api_url,
            settings.zalo_zns_api_url,
            settings.zalo_oa_app_id or "",
            settings.zalo_oa_app_secret or "",
            settings.ocop_delivery_timeout,
        )
        sessionmaker = create_sessionmaker(engine)
        self.keeper = TokenKeeper(
            self.client,
            sessionmaker,
            settings.zalo_oa_token_key or "",
            CHANNEL,
            clock,
            settings.zalo_oa_refresh_token,
        )
        self.sender = OASender(
            self.client,
            self.keeper,
            sessionmaker,
            clock,
            zns_rules(settings),
            window=dt.timedelta(hours=settings.zalo_oa_window_hours),
            buttons=settings.zalo_oa_buttons,
        )
        self.worker = DeliveryWorker(
            sessionmaker,
            CHANNEL,
            _unused_send,
            pacing or Pacing(settings.ocop_delivery_rate),
            send_claimed=self.sender,
        )
        self.channel = OAChannel(
            self.client,
            self.keeper,
            self.worker,
            self.sender,
            app_id=settings.zalo_oa_app_id or "",
            oa_secret=settings.zalo_oa_secret_key or "",
            clock=clock,
            sessionmaker=sessionmaker,
        )

    def wake(self) -> None:
        self.worker.wake()

    async def open(self) -> None:
        await self.client.start()
        try:
            await self.keeper.access_token()
        except (OAError, OANetworkError) as error:  # sends retry; the webhook works meanwhile
            log.warning("Zalo OA token not available yet (%s); carrying on", error)

    async def start(self) -> None:
        settings = self.settings
        await self.channel.start_webhook(
            settings.zalo_oa_webhook_path,
            settings.zalo_oa_webhook_listen,
            settings.zalo_oa_webhook_port,
        )

    async def stop(self) -> None:
        await self.channel.stop()

    async def close(self) -> None:
        await self.client.close()


async def _unused_send(chat_id: str, reply: Reply) -> str:
    raise AssertionError("the OA sends whole outbox rows (send_claimed)")
