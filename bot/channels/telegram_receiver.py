"""Telegram updates in: long polling or a webhook, each update recorded before it is confirmed.

Polling: getUpdates confirms every update below the `offset` of the next call, so the offset
moves past an update only once the inbox insert that holds it has committed (PTB's own updater
confirms first and handles after). A webhook answers 200 only after that commit, and does no
handling in the request; any other answer makes Telegram send the update again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import text
from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, TelegramError

from bot.channels.telegram import TelegramChannel, api_call, incoming
from bot.receiving import Recorder
from models.inbox import Incoming

log = logging.getLogger(__name__)

POLL_TIMEOUT = 30  # seconds one getUpdates call waits for updates
POLL_LIMIT = 100
MAX_RETRY_DELAY = 30.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_CONNECTIONS = 40
READ_MARGIN = 10.0  # seconds beyond the long poll's own timeout before the call is given up
HEALTH_PATH = "/healthz"
HEALTH_TIMEOUT = 5.0  # seconds the database may take to answer a health check
# Telegram takes 1-256 of these characters; fewer than 32 could be guessed.
SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}")
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_secret(secret: str | None) -> str:
    """The webhook's secret, or ValueError saying what a usable one is."""
    if not secret:
        raise ValueError(
            f"WEBHOOK_SECRET must be set with WEBHOOK_URL; make one with: {MAKE_SECRET}"
        )
    if not SECRET.fullmatch(secret):
        raise ValueError(
            "WEBHOOK_SECRET must be 32 to 256 characters of A-Z, a-z, 0-9, _ and -; "
            f"make one with: {MAKE_SECRET}"
        )
    return secret


def _incoming(bot: Bot, updates: list[Any]) -> tuple[list[Incoming], int | None]:
    """The updates worth recording, and the offset that confirms them all."""
    name = bot.username
    records = [r for update in updates if (r := incoming(update, bot, name)) is not None]
    ids = [update["update_id"] for update in updates if isinstance(update.get("update_id"), int)]
    return records, (max(ids) + 1 if ids else None)


class TelegramPoller:
    def __init__(
        self,
        bot: Bot,
        channel: TelegramChannel,
        recorder: Recorder,
        *,
        timeout: int = POLL_TIMEOUT,
        retry_delay: float = 1.0,
    ) -> None:
        self.bot, self.channel, self.recorder = bot, channel, recorder
        self.timeout, self.retry_delay = timeout, retry_delay
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        """Stop at once: a getUpdates in flight is abandoned, so what it would have returned
        stays unconfirmed at Telegram and comes again on the next start."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        offset: int | None = None
        deleted = False
        while not self._stopping.is_set():
            try:
                if not deleted:  # getUpdates and a webhook exclude each other
                    await self.bot.delete_webhook()
                    deleted = True
                asked = loop.time()
                # The raw JSON: it goes to the inbox as it is, and is turned into PTB objects
                # once, when handled (get_updates would build them, and to_dict undo them:
                # 0.2 ms an update, which a flood of thousands makes seconds).
                got = await api_call(
                    self.bot,
                    "getUpdates",
                    read_timeout=self.timeout + READ_MARGIN,
                    offset=offset,
                    timeout=self.timeout,
                    limit=POLL_LIMIT,
                    allowed_updates=list(Update.ALL_TYPES),
                )
            except InvalidToken:
                log.error("Telegram refused the bot token; polling stopped")
                return
            except (TelegramError, OSError) as error:
                failures += 1
                delay = min(MAX_RETRY_DELAY, self.retry_delay * 2 ** min(failures - 1, 6))
                conflict = " (another process is polling with this token?)"
                log.warning(
                    "getUpdates failed: %s%s; retrying in %.1f s",
                    error,
                    conflict if isinstance(error, Conflict) else "",
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                continue
            failures = 0
            if not got and loop.time() - asked < min(1.0, self.timeout / 2):
                # An empty answer long before the timeout: the server is not long-polling (it
                # is stopping, or misbehaves). Pause rather than ask again at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.retry_delay)
                continue
            records, next_offset = _incoming(self.bot, list(got) if isinstance(got, list) else [])
            if records and not await self.recorder.record_until_done(
                records, self.channel.tell, self._stopping
            ):
                return
            if next_offset is not None:
                offset = next_offset


class TelegramWebhook:
    """Serves the path of WEBHOOK_URL on WEBHOOK_LISTEN:WEBHOOK_PORT (directly, or behind a
    proxy that keeps the path) and tells Telegram to post there with the secret; and
    GET /healthz, 200 while the database answers (for a proxy or a service monitor)."""

    def __init__(
        self,
        bot: Bot,
        channel: TelegramChannel,
        recorder: Recorder,
        *,
        url: str,
        secret: str,
        listen: str,
        port: int,
    ) -> None:
        check_secret(secret)
        self.bot, self.channel, self.recorder = bot, channel, recorder
        self.url, self.listen, self.port = url, listen, port
        self._secret = secret.encode()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**2)
        app.router.add_post(urlsplit(self.url).path or "/", self._on_update)
        app.router.add_get(HEALTH_PATH, self._on_health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.listen, self.port).start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        await self.bot.set_webhook(
            self.url,
            secret_token=self._secret.decode(),
            allowed_updates=Update.ALL_TYPES,
            max_connections=MAX_CONNECTIONS,
        )
        log.debug("Telegram webhook served on %s:%s", self.listen, self.port)

    async def stop(self) -> None:
        """Stop answering: Telegram keeps what it could not deliver and sends it later."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_health(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                async with self.recorder.sessionmaker() as session:
                    await session.execute(text("SELECT 1"))
        except Exception as error:  # whatever the database says, the answer is: not healthy
            log.warning("health check: the database did not answer (%s)", type(error).__name__)
            return web.Response(status=503, text="database unavailable\n")
        return web.Response(text="ok\n")

    async def _on_update(self, request: web.Request) -> web.Response:
        # Compared in constant time, so the answer's timing tells nothing about the secret.
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("refused a webhook call without the right secret")
            return web.Response(status=403)
        try:
            update = await request.json()
        except ValueError:
            return web.Response(status=400)
        if not isinstance(update, dict):
            return web.Response(status=400)
        records, _offset = _incoming(self.bot, [update])
        try:
            await self.recorder.record(records, self.channel.tell)
        except Exception as error:  # not recorded: Telegram sends it again
            log.warning("could not record a webhook update (%s); Telegram will retry", error)
            return web.Response(status=503)
        return web.Response(status=200)
