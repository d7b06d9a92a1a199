"""Application factory: builds the PTB Application from settings; nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
import signal
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, Defaults
from telegram.request import BaseRequest, HTTPXRequest

from bot.backup import BackupJob, BackupSchedule
from bot.channels.telegram import CHANNEL, TelegramChannel, telegram_sender
from bot.channels.telegram_menus import OfficialMenus, publish_default_menus
from bot.channels.telegram_receiver import TelegramPoller, TelegramWebhook, check_secret
from bot.delivery import CONCURRENT_SENDS, DeliveryWorker
from bot.fairness import SenderLimits
from bot.jobs import parse_time, schedule_jobs
from bot.runtime import Receiver, Runtime, settle_process
from bot.settings import Settings
from handlers.checklist import load_checklist
from handlers.context import Letterhead, Services
from models.admin_units import Area
from models.db import create_engine, create_sessionmaker
from models.officials import ensure_admins
from models.outbox import Pacing
from models.storage import open_storage

log = logging.getLogger(__name__)


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
    zalo = None
    if settings.zalo_bot_token:
        # Imported only when used: aiohttp alone is ~0.15 s of start-up (bench/README.md).
        from bot.channels.zalo_bot import ZaloBot

        zalo = ZaloBot(settings, db, shared, pacing=pacing)
        zalo.channel.recorder = runtime.recorder
    official = None
    if settings.zalo_oa_app_id:
        from bot.channels.zalo_oa_bot import OABot

        official = OABot(settings, db, shared.clock, pacing=pacing)
        official.channel.recorder = runtime.recorder
        official.sender.queued = runtime.wake_deliveries

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
        schedule_jobs(
            application,
            sessionmaker,
            shared,
            parse_time(settings.ocop_digest_time),
            runtime.wake_deliveries,
            BackupJob(
                sessionmaker,
                settings.database_url,
                BackupSchedule.of(settings),
                shared.clock,
                shared.timezone,
            ),
            arrivals=settings.ocop_arrival_notices,
            menus=menus,
        )
        await delivery_bot.initialize()
        if zalo is not None:
            await zalo.open()
        if official is not None:
            await official.open()
        await runtime.start()
        log.info("serving %s", settings.served(application.bot.username))

    async def halt(_application: Application) -> None:
        await runtime.stop()
        if zalo is not None:
            await zalo.close()
        if official is not None:
            await official.close()

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
    if zalo is not None:
        runtime.add_channel(zalo.channel, zalo)
        application.bot_data["zalo"] = zalo
    if official is not None:
        runtime.add_channel(official.channel, official)
        application.bot_data["zalo_oa"] = official
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


async def serve(application: Application, stopping: asyncio.Event | None = None) -> None:
    """Serve until SIGINT or SIGTERM (or `stopping` is set)."""
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await start(application)
    settle_process()
    try:
        await stopping.wait()
    finally:
        log.info("stopping")
        await stop(application)
