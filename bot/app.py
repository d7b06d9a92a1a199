"""Application factory: builds the PTB Application from settings; nothing happens at import."""

from __future__ import annotations

import asyncio
import gc
import logging
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot, BotCommand, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    Defaults,
    TypeHandler,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.batch import Batcher
from bot.channels.telegram import CHANNEL, ChatOrder, make_update_handler
from bot.delivery import CONCURRENT_SENDS, DeliveryWorker, telegram_sender
from bot.jobs import parse_time, schedule_jobs
from bot.settings import Settings
from handlers.context import Services
from handlers.events import Reply
from handlers.i18n import LANGUAGES, _, use_language
from models.admin_units import Area
from models.db import create_engine, create_sessionmaker
from models.officials import ensure_admins
from models.outbox import Pacing

log = logging.getLogger(__name__)

# Commands shown in Telegram's menu; the Vietnamese aliases work too but are not listed twice.
MENU_COMMANDS = ("start", "register", "status", "cancel", "help", "language")


def build_services(settings: Settings) -> Services:
    return Services(
        area=Area(settings.ocop_province_code, settings.ocop_commune_codes),
        timezone=ZoneInfo(settings.ocop_timezone),
        reminder_days=tuple(sorted(set(settings.ocop_reminder_days), reverse=True)),
    )


def command_descriptions() -> list[BotCommand]:
    descriptions = {
        "start": _("Main menu"),
        "register": _("Register a product"),
        "status": _("My registrations"),
        "cancel": _("Cancel the current registration"),
        "help": _("Help"),
        "language": _("Change language"),
    }
    return [BotCommand(name, descriptions[name]) for name in MENU_COMMANDS]


async def publish_commands(application: Application) -> None:
    for language in LANGUAGES:
        use_language(language)
        await application.bot.set_my_commands(
            command_descriptions(), language_code=None if language == "vi" else language
        )


async def report_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        use_language(None)
        reply = Reply(_("Sorry, something went wrong. Your answers are saved; please try again."))
        await context.bot.send_message(update.effective_chat.id, reply.text)


def build_application(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    services: Services | None = None,
    request: BaseRequest | None = None,
    rate_limiter: bool = True,
) -> Application:
    """The bot, wired: Telegram transport, database, handlers. Call `run_polling` or drive it.

    `request`, when given, carries every Bot API call, the outbox's too (an in-process
    transport in benchmarks).

    With ZALO_BOT_TOKEN set too, the Zalo channel runs in the same event loop: started after
    Telegram connects, stopped with it (`bot_data["zalo"]`)."""
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    # One TLS context (httpx's default trust store) for every HTTP client: loading the CA
    # store is ~40 ms per client, three clients at start-up (bench/README.md, "startup").
    tls = httpx.create_ssl_context()
    own_engine = engine is None
    db = engine if engine is not None else create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(db)
    batcher = Batcher(sessionmaker)
    shared = services or build_services(settings)

    # Notifications go out through the outbox with a bot of their own: the worker paces them
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
    worker = DeliveryWorker(
        sessionmaker, CHANNEL, telegram_sender(delivery_bot), Pacing(settings.ocop_delivery_rate)
    )
    tasks: list[asyncio.Task[None]] = []
    zalo = None
    if settings.zalo_bot_token:
        # Imported only when used: aiohttp alone is ~0.15 s of start-up (bench/README.md).
        from bot.channels.zalo_bot import ZaloBot

        zalo = ZaloBot(settings, db, shared, queued=worker.wake, batcher=batcher)

    def queued() -> None:
        """Notices were queued; they may be for either channel."""
        worker.wake()
        if zalo is not None:
            zalo.wake()

    async def prepare(application: Application) -> None:
        """Runs once the bot is connected, before the first update."""
        await publish_commands(application)
        await batcher.warm_up()
        async with sessionmaker() as session, session.begin():
            await ensure_admins(session, CHANNEL, settings.ocop_admins)
        schedule_jobs(
            application, sessionmaker, shared, parse_time(settings.ocop_digest_time), queued
        )
        await delivery_bot.initialize()
        application.bot_data["delivery"] = worker
        tasks.append(asyncio.create_task(worker.run(), name="outbox-delivery"))
        if zalo is not None:
            await zalo.start()
            application.bot_data["zalo"] = zalo
        # What start-up built (modules, classes, caches) lives as long as the process: frozen,
        # full garbage collections skip it (a pause of ~65 ms becomes ~10). Most of what an
        # update allocates dies by reference counting, so the cycle collector need not look at
        # young objects every 700 allocations: +10-15% throughput (bench/README.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)

    async def halt(_application: Application) -> None:
        if zalo is not None:
            await zalo.stop()
        await worker.stop()
        for task in tasks:
            await task
        tasks.clear()

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
        .post_init(prepare)
        .post_stop(halt)
        .post_shutdown(dispose)
    )
    if request is None:  # PTB's own defaults (256 connections; 1 for getUpdates), one TLS context
        builder = builder.request(
            HTTPXRequest(connection_pool_size=256, httpx_kwargs={"verify": tls})
        ).get_updates_request(HTTPXRequest(connection_pool_size=1, httpx_kwargs={"verify": tls}))
    else:
        builder = builder.request(request).get_updates_request(request)
    if rate_limiter:  # Telegram's 30 messages/s; a benchmark measuring the bot turns it off
        # (PTB types a builder without a limiter as BaseRateLimiter[None].)
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))  # type: ignore[arg-type]
    builder = builder.concurrent_updates(ChatOrder())
    application = builder.build()
    handler = make_update_handler(batcher, shared, queued)
    # One handler for everything: routing happens in handlers/, not in PTB filters.
    application.add_handler(TypeHandler(Update, handler))
    application.add_error_handler(report_error)
    return application
