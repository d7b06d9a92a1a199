"""Application factory: builds the PTB Application from settings; nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import Bot
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot.backup import BackupJob, BackupSchedule
from bot.channels import telegram, zalo_oa
from bot.channels import zalo as zalo_bot_channel
from bot.channels.telegram import CHANNEL, TelegramChannel, telegram_sender
from bot.channels.telegram_menus import OfficialMenus, publish_default_menus
from bot.channels.telegram_receiver import TelegramPoller, TelegramWebhook, check_secret
from bot.delivery import CONCURRENT_SENDS, DeliveryWorker
from bot.fairness import SenderLimits
from bot.inbox import Channel
from bot.jobs import Job, Scheduled, parse_time, scheduled_jobs
from bot.runtime import Receiver, Runtime
from bot.settings import Settings
from handlers.checklist import load_checklist
from handlers.context import Letterhead, Services
from models.admin_units import Area
from models.db import create_engine, create_sessionmaker
from models.officials import ensure_admins
from models.outbox import Pacing
from models.storage import open_storage

log = logging.getLogger(__name__)


# Every channel a registration may have come through, enabled now or not, by its name.
CHANNEL_LABELS = tuple(
    (channel.CHANNEL, channel.LABEL) for channel in (telegram, zalo_bot_channel, zalo_oa)
)


def build_services(settings: Settings) -> Services:
    load_checklist(settings.ocop_dossier_checklist)  # an office's malformed file stops the start
    return Services(
        area=Area(
            settings.ocop_province_code, settings.ocop_commune_codes, settings.ocop_area_name
        ),
        timezone=ZoneInfo(settings.ocop_timezone),
        reminder_days=tuple(sorted(set(settings.ocop_reminder_days), reverse=True)),
        data_controller=settings.ocop_data_controller,
        office_contact=settings.ocop_office_contact,
        form_retention_days=settings.ocop_form_retention_days,
        outbox_retention_days=settings.ocop_outbox_retention_days,
        storage=open_storage(
            settings.ocop_dossier_store,
            endpoint=settings.ocop_s3_endpoint,
            access_key=settings.ocop_s3_access_key,
            secret_key=settings.ocop_s3_secret_key,
            region=settings.ocop_s3_region,
        ),
        checklist_path=settings.ocop_dossier_checklist,
        channels=CHANNEL_LABELS,
        form_template=settings.ocop_dossier_form_template,
        cover_template=settings.ocop_dossier_cover_template,
        dossier_max_bytes=settings.ocop_dossier_max_mb * 1024 * 1024,
        letterhead=Letterhead(
            settings.ocop_office_name, settings.ocop_signer_title, settings.ocop_office_place
        ),
    )


def build_runtime(
    settings: Settings,
    engine: AsyncEngine,
    services: Services,
    *,
    limits: SenderLimits | None = None,
) -> Runtime:
    """The channel-neutral runtime; the caller adds its channels."""
    return Runtime(
        engine,
        services,
        limits or SenderLimits(settings.ocop_user_rate, settings.ocop_user_burst),
    )


class Adapter(Receiver, Protocol):
    """A channel served beside the runtime: connected before it starts, closed after."""

    @property
    def channel(self) -> Channel: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


def add_zalo_channels(
    settings: Settings,
    engine: AsyncEngine,
    services: Services,
    runtime: Runtime,
    *,
    pacing: Pacing | None = None,
    **zalo_options: Any,
) -> list[Adapter]:
    """The Zalo channels whose settings are set (Bot Platform, Official Account), on the
    runtime. `zalo_options` go to ZaloBot (tests poll the emulator briefly)."""
    adapters: list[Adapter] = []
    if settings.zalo_bot_token:
        # Imported only when used: aiohttp alone is ~0.15 s of start-up (bench/README.md).
        from bot.channels.zalo_bot import ZaloBot

        zalo = ZaloBot(settings, engine, services, pacing=pacing, **zalo_options)
        zalo.channel.recorder = runtime.recorder
        runtime.add_channel(zalo.channel, zalo)
        adapters.append(zalo)
    if settings.zalo_oa_app_id:
        from bot.channels.zalo_oa_bot import OABot

        official = OABot(settings, engine, services.clock, pacing=pacing)
        official.channel.recorder = runtime.recorder
        official.sender.queued = runtime.wake_deliveries
        runtime.add_channel(official.channel, official)
        adapters.append(official)
    return adapters


def job_table(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    services: Services,
    runtime: Runtime,
    menus: Job | None = None,
) -> list[Scheduled]:
    """The scheduled jobs, the same whichever channels are served (`menus`: Telegram's)."""
    return scheduled_jobs(
        sessionmaker,
        services,
        parse_time(settings.ocop_digest_time),
        runtime.wake_deliveries,
        BackupJob(
            sessionmaker,
            settings.database_url,
            BackupSchedule.of(settings),
            services.clock,
            services.timezone,
        ),
        arrivals=settings.ocop_arrival_notices,
        menus=menus,
    )


def build_application(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    services: Services | None = None,
    request: BaseRequest | None = None,
    pacing: Pacing | None = None,
    limits: SenderLimits | None = None,
) -> Application:
    """The bot, wired: the Telegram channel (and Zalo's when ZALO_BOT_TOKEN is set), the
    runtime, the scheduled jobs. Serve it with `serve`, or drive it with `start`/`stop`.

    PTB's Application gives the Telegram bot and the job queue; updates do not go through its
    updater or handlers but through the runtime (bot/runtime.py): recorded in the inbox before
    they are confirmed, handled from there, answered through the outbox.

    `request`, when given, carries every Bot API call (an in-process transport in benchmarks);
    `pacing` sets the delivery limits (benchmarks measuring the bot lift them), `limits` the
    per-sender rate."""
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    if settings.webhook_url:
        check_secret(settings.webhook_secret)
    # One TLS context (httpx's default trust store) for every HTTP client: loading the CA
    # store is ~40 ms per client, three clients at start-up (bench/README.md, "startup").
    tls = httpx.create_ssl_context()
    own_engine = engine is None
    db = engine if engine is not None else create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(db)
    shared = services or build_services(settings)
    runtime = build_runtime(settings, db, shared, limits=limits)
    pacing = pacing or Pacing(settings.ocop_delivery_rate)

    # Messages go out through the outbox with a bot of their own: the worker paces them
    # itself and must see Telegram's answers (429, 403) rather than a rate limiter's retries.
    delivery_bot = Bot(
        settings.telegram_bot_token,
        base_url=settings.telegram_api_url,
        base_file_url=settings.file_url,
        request=request
        or HTTPXRequest(
            connection_pool_size=CONCURRENT_SENDS,
            connect_timeout=settings.ocop_delivery_timeout,
            read_timeout=settings.ocop_delivery_timeout,
            write_timeout=settings.ocop_delivery_timeout,
            pool_timeout=settings.ocop_delivery_timeout,
            httpx_kwargs={"verify": tls},
        ),
    )
    worker = DeliveryWorker(sessionmaker, CHANNEL, telegram_sender(delivery_bot), pacing)

    async def prepare(application: Application) -> None:
        """Runs once the bot is connected, before the first update."""
        await publish_default_menus(application.bot, shared.routes)
        async with sessionmaker() as session, session.begin():
            await ensure_admins(session, CHANNEL, settings.ocop_admins)
        # Only reads: on SQLite it never waits for (or holds) the write lock.
        menus = OfficialMenus(
            application.bot, create_sessionmaker(db, read_only=True), shared.routes
        )
        await menus.sync()
        runtime.scheduler.schedule(job_table(settings, sessionmaker, shared, runtime, menus))
        await delivery_bot.initialize()
        for adapter in zalo:
            await adapter.open()
        await runtime.start()
        log.info("serving %s", settings.served(application.bot.username))

    async def halt(_application: Application) -> None:
        await runtime.stop()
        for adapter in zalo:
            await adapter.close()

    async def dispose(_application: Application) -> None:
        await delivery_bot.shutdown()
        if own_engine:
            await db.dispose()

    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=ZoneInfo(settings.ocop_timezone)))
        .updater(None)
        .post_init(prepare)
        .post_stop(halt)
        .post_shutdown(dispose)
    )
    if request is None:  # PTB's own defaults (256 connections; 1 for getUpdates), one TLS context
        # getUpdates waits up to POLL_TIMEOUT for updates: its read timeout is that and more.
        builder = builder.request(
            HTTPXRequest(connection_pool_size=256, httpx_kwargs={"verify": tls})
        ).get_updates_request(HTTPXRequest(connection_pool_size=1, httpx_kwargs={"verify": tls}))
    else:
        builder = builder.request(request).get_updates_request(request)
    application = builder.build()
    channel = TelegramChannel(application.bot, worker)
    receiver: Receiver
    if settings.webhook_url:
        receiver = TelegramWebhook(
            application.bot,
            channel,
            runtime.recorder,
            url=settings.webhook_url,
            secret=settings.webhook_secret or "",
            listen=settings.webhook_listen,
            port=settings.webhook_port,
        )
    else:
        receiver = TelegramPoller(application.bot, channel, runtime.recorder)
    runtime.add_channel(channel, receiver)
    # After Telegram's: the runtime starts and stops the channels in the order they were added.
    zalo = add_zalo_channels(settings, db, shared, runtime, pacing=pacing)
    for adapter in zalo:
        application.bot_data[adapter.channel.name] = adapter
    application.bot_data["runtime"] = runtime
    application.bot_data["delivery"] = worker
    return application


async def start(application: Application) -> None:
    """Connect and start everything, as `serve` does (tests and benchmarks drive it so)."""
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()


async def stop(application: Application) -> None:
    """Stop receiving, finish or hand back the work under way, disconnect."""
    if application.running:
        await application.stop()
    if application.post_stop is not None:
        await application.post_stop(application)
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)


def _stop_on_signals(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)


async def serve(
    application: Application,
    stopping: asyncio.Event | None = None,
    started: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (or `stopping` is set); `started` is called once serving."""
    await _serve(partial(start, application), partial(stop, application), stopping, started)


async def _serve(
    begin: Callable[[], Awaitable[None]],
    end: Callable[[], Awaitable[None]],
    stopping: asyncio.Event | None,
    started: Callable[[], None] | None,
) -> None:
    stopping = stopping or asyncio.Event()
    _stop_on_signals(stopping)
    await begin()
    if started is not None:
        started()
    try:
        await stopping.wait()
    finally:
        log.info("stopping")
        await end()


class WithoutTelegram:
    """The bot with no Telegram token: the Zalo channels set, the runtime, the same jobs as
    `build_application`'s (no PTB Application: it is Telegram's). `start`/`stop` as there."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine | None = None,
        services: Services | None = None,
        pacing: Pacing | None = None,
        **zalo_options: Any,
    ) -> None:
        self.own_engine = engine is None
        self.engine = engine if engine is not None else create_engine(settings.database_url)
        self.services = services or build_services(settings)
        self.runtime = build_runtime(settings, self.engine, self.services)
        self.adapters = add_zalo_channels(
            settings, self.engine, self.services, self.runtime, pacing=pacing, **zalo_options
        )
        sessionmaker = create_sessionmaker(self.engine)
        self.runtime.scheduler.schedule(
            job_table(settings, sessionmaker, self.services, self.runtime)
        )
        self.settings = settings

    async def start(self) -> None:
        opened: list[Adapter] = []
        try:
            for adapter in self.adapters:
                await adapter.open()
                opened.append(adapter)
            await self.runtime.start()
        except BaseException:
            await self._close(opened)
            raise
        log.info("serving %s", self.settings.served())

    async def stop(self) -> None:
        await self.runtime.stop()
        await self._close(self.adapters)

    async def _close(self, adapters: list[Adapter]) -> None:
        for adapter in adapters:
            await adapter.close()
        if self.own_engine:
            await self.engine.dispose()


async def serve_without_telegram(
    settings: Settings,
    stopping: asyncio.Event | None = None,
    started: Callable[[], None] | None = None,
) -> None:
    """Serve the Zalo channels alone until SIGINT/SIGTERM (or `stopping` is set)."""
    bot = WithoutTelegram(settings)
    await _serve(bot.start, bot.stop, stopping, started)
