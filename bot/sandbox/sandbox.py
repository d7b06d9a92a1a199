"""The sandbox itself: the real bot (`bot.app.build_application`: the same runtime, handlers,
migrations and jobs) served in this process against the built-in Telegram and Zalo emulators,
with a SQLite file of its own; and what the web chat does as the personas.

Nothing leaves the machine: the bot's settings name only the emulators on the loopback and
ignore `.env`, so a real token there is never used."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.sandbox.chats import telegram_chat, zalo_chat
from bot.sandbox.personas import ADMIN_IDS, LOCATION, TELEGRAM, Persona, seed
from bot.settings import DEFAULT_COMMUNES, Settings

if TYPE_CHECKING:  # imported when the bot starts, so that the page is served at once
    from sqlalchemy.ext.asyncio import AsyncEngine
    from telegram.ext import Application

    from bot.emulator import TelegramEmulator
    from bot.emulator.zalo import ZaloEmulator

JSON = dict[str, Any]
log = logging.getLogger(__name__)

# What one message may hold; longer text is sent in parts, as the apps do.
TEXT_LIMIT = {"telegram": 4096, "zalo": 2000}


def sandbox_settings(folder: Path, telegram: TelegramEmulator, zalo: ZaloEmulator) -> Settings:
    """Settings that point only at the emulators, whatever the environment or `.env` says."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=telegram.token,
        telegram_api_url=telegram.api_url,
        telegram_file_url=telegram.file_url,
        webhook_url=None,
        zalo_bot_token=zalo.token,
        zalo_api_url=zalo.api_url,
        zalo_webhook_url=None,
        database_url=f"sqlite+aiosqlite:///{folder.resolve()}/ocop.db",
        ocop_admins=ADMIN_IDS,
        ocop_province_code="51",
        ocop_commune_codes=list(DEFAULT_COMMUNES),
    )


class Sandbox:
    """Start, reset, stop; act as a persona; read a persona's chat; wait for a change."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.generation = 0  # counts resets: the page starts its chats afresh on a new one
        self.telegram: TelegramEmulator | None = None
        self.zalo: ZaloEmulator | None = None
        self.application: Application | None = None
        self.engine: AsyncEngine | None = None
        self._mine: dict[str, list[JSON]] = {}  # the personas' own messages, by persona
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()  # set while the bot is serving
        self._lock = asyncio.Lock()
        self.stopping = False

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """An empty database, migrated and seeded with the personas; the bot serving it."""
        async with self._lock:
            await self._start()

    async def _start(self) -> None:
        from bot.app import build_application, start
        from bot.emulator import TelegramEmulator
        from bot.emulator.zalo import ZaloEmulator
        from bot.migrate import upgrade
        from models.db import create_engine, create_sessionmaker

        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        telegram, zalo = TelegramEmulator(bot_username="ocop_sandbox_bot"), ZaloEmulator()
        await telegram.start()
        await zalo.start()
        telegram.on_change.append(self._pulse)
        zalo.on_change.append(self._pulse)
        settings = sandbox_settings(self.folder, telegram, zalo)
        await asyncio.to_thread(upgrade, settings.database_url)  # alembic runs its own loop
        engine = create_engine(settings.database_url)
        async with create_sessionmaker(engine)() as session, session.begin():
            seed(session)
        application = build_application(settings, engine=engine)
        await start(application)
        self.telegram, self.zalo, self.engine = telegram, zalo, engine
        self.application = application
        self._mine = {}
        self._ready.set()
        self._pulse()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        from bot.app import stop

        self._ready.clear()
        application, self.application = self.application, None
        if application is not None:
            await stop(application)
        for emulator in (self.telegram, self.zalo):
            if emulator is not None:
                await emulator.stop()
        if self.engine is not None:
            await self.engine.dispose()
        self.telegram = self.zalo = self.engine = None

    async def reset(self) -> None:
        """Start over from an empty database and empty chats."""
        async with self._lock:
            await self._stop()
            self.generation += 1
            self._pulse()
            await self._start()

    async def close(self) -> None:
        self.stopping = True
        self._pulse()
        await self.stop()

    # --- waiting for what the page shows ------------------------------------------------

    def _pulse(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def changed(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return at the next change of any chat (or of the sandbox), or after `timeout`."""
        event = self._changed
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the bot serves (at start and during a reset); False after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    # --- the personas' chats ----------------------------------------------------------

    def chat(self, persona: Persona) -> JSON:
        mine = self._mine.get(persona.key, [])
        if persona.channel == TELEGRAM:
            sent = self.telegram.messages_to(int(persona.user_id)) if self.telegram else []
            view = telegram_chat(persona.key, sent, mine)
        else:
            sent = self.zalo.messages_to(persona.user_id) if self.zalo else []
            view = zalo_chat(persona.key, sent, mine)
        return {**view, "generation": self.generation, "ready": self.ready}

    def document(self, persona: Persona, message_id: int) -> tuple[str, bytes] | None:
        """A file the bot sent to this persona: its name and content."""
        if self.telegram is None or persona.channel != TELEGRAM:
            return None
        for entry in self.telegram.messages_to(int(persona.user_id)):
            if entry["message_id"] == message_id and entry["document"]:
                return entry["document"]["file_name"], entry["document"]["content"]
        return None

    def _remember(self, persona: Persona, update: JSON, shown: str) -> None:
        message = update.get("message") or {}
        self._mine.setdefault(persona.key, []).append(
            {"id": message.get("message_id"), "from": "me", "text": shown}
        )

    def say(self, persona: Persona, text: str) -> None:
        """Send text as the persona; over the channel's limit it goes in parts, as the apps do
        (an empty text is sent as it is: the bot answers it like any other)."""
        limit = TEXT_LIMIT[persona.channel]
        for part in [text[i : i + limit] for i in range(0, len(text), limit)] or [text]:
            if persona.channel == TELEGRAM:
                assert self.telegram is not None
                update = self.telegram.send_text(
                    int(persona.user_id), part, first_name=persona.name
                )
            else:
                assert self.zalo is not None
                update = self.zalo.send_text(persona.user_id, part, display_name=persona.name)
            self._remember(persona, update, part)

    def press(self, persona: Persona, message_id: int, data: str) -> None:
        """Tap an inline button (Telegram only); a button of an old message is pressed all the
        same, and the bot answers as it does on Telegram."""
        assert self.telegram is not None and persona.channel == TELEGRAM
        self.telegram.press(int(persona.user_id), message_id, data)

    def share_contact(self, persona: Persona) -> None:
        assert self.telegram is not None and persona.channel == TELEGRAM
        update = self.telegram.share_contact(int(persona.user_id), persona.phone)
        self._remember(persona, update, f"📱 {persona.phone}")

    def share_location(self, persona: Persona) -> None:
        assert self.telegram is not None and persona.channel == TELEGRAM
        latitude, longitude = LOCATION
        update = self.telegram.share_location(int(persona.user_id), latitude, longitude)
        self._remember(persona, update, f"📍 {latitude}, {longitude}")

    def send_sample(self, persona: Persona) -> None:
        """Send the sample certificate list as a file, as an admin imports one."""
        from bot.sandbox.sample import FILE_NAME, sample_certificates

        assert self.telegram is not None and persona.channel == TELEGRAM
        content = sample_certificates(self._today())
        update = self.telegram.send_document(int(persona.user_id), FILE_NAME, content)
        self._remember(persona, update, f"📄 {FILE_NAME}")

    def _today(self) -> Any:
        assert self.application is not None
        return self.application.bot_data["runtime"].services.today()
