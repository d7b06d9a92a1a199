"""Drives the real bot over the emulator: a running Application and producers who talk to it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.ext import Application

from bot.app import build_application
from bot.app import start as start_application
from bot.app import stop as stop_application
from bot.delivery import DeliveryWorker
from bot.emulator import TelegramEmulator
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.context import Services
from models.admin_units import Area
from models.db import create_sessionmaker
from models.inbox import Pending
from models.outbox import Pacing, undelivered

JSON = dict[str, Any]
ADMIN_ID = 9000  # made an admin through OCOP_ADMINS by the `settings` fixture
CONSENT_DATA = "cs:y"  # the personal-data notice's "I agree" button


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


async def drain_outbox(
    engine: AsyncEngine, worker: DeliveryWorker, timeout: float = 30.0, *, progressing: bool = False
) -> None:
    """Wait until `worker`'s outbox has nothing left to send (each message sent or given up).

    With `progressing`, `timeout` bounds a pause instead of the whole wait: it goes on as long as
    messages keep going out, however slowly a busy machine sends them, and fails when none has
    for `timeout` seconds."""
    loop = asyncio.get_running_loop()

    async def left() -> int:
        async with create_sessionmaker(engine, read_only=True)() as session:
            return await undelivered(session)

    # The condition is held while the outbox is read: a flush that lands during the read
    # notifies only once we wait, never before (a wake finding nothing to send notifies no one).
    deadline = loop.time() + timeout
    async with worker.flushed:
        remaining = await left()
        while remaining:
            worker.wake()
            try:
                async with asyncio.timeout_at(deadline):
                    await worker.flushed.wait()
            except TimeoutError:
                what = "without one going out" if progressing else "in all"
                message = f"{remaining} messages left after {timeout:.0f} s {what}"
                raise TimeoutError(message) from None
            now = await left()
            if progressing and now < remaining:
                deadline = loop.time() + timeout
            remaining = now


class BotUnderTest:
    """The real Application, polling the emulator over HTTP, plus a way to know when an
    update has been fully handled: committed, and every reply it caused sent (or given up)."""

    def __init__(self, settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator) -> None:
        self.settings, self.engine, self.emulator = settings, engine, emulator
        self.clock = Clock(dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC))
        self.services = Services(
            area=Area(
                settings.ocop_province_code, settings.ocop_commune_codes, settings.ocop_area_name
            ),
            timezone=ZoneInfo(settings.ocop_timezone),
            clock=self.clock,
            office_contact=settings.ocop_office_contact,
        )
        self.application: Application | None = None  # type: ignore[type-arg]
        self.tracker = Tracker()
        # A test's producer answers at once; Telegram's one message a second per chat would
        # only make the story slow. Tests of the limits set `pacing` to the real ones.
        self.pacing = Pacing(settings.ocop_delivery_rate, private_interval=0.0)

    async def start(self) -> None:
        application = build_application(
            self.settings, engine=self.engine, services=self.services, pacing=self.pacing
        )
        self.tracker.attach(application.bot_data["runtime"])
        await start_application(application)
        self.application = application

    async def stop(self) -> None:
        application, self.application = self.application, None
        if application is not None:
            await stop_application(application)

    @property
    def runtime(self) -> Runtime:
        assert self.application is not None
        return cast(Runtime, self.application.bot_data["runtime"])

    async def run_job(self, name: str) -> None:
        """Run a scheduled job now, as its timer would (the test sets the clock first)."""
        await self.runtime.scheduler.run_now(name)

    async def drain(self, timeout: float = 30.0, *, progressing: bool = False) -> None:
        """Wait until the outbox has nothing left to send (each message sent or given up); see
        drain_outbox for `progressing`."""
        assert self.application is not None
        worker = self.application.bot_data["delivery"]
        await drain_outbox(self.engine, worker, timeout, progressing=progressing)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def deliver(self, update: JSON, *, redeliver: bool = False) -> list[JSON]:
        """Wait until the bot has handled `update` and sent its replies; return the messages it
        sent to that chat meanwhile. With `redeliver`, the emulator first delivers the same
        update again."""
        chat_id = _chat_of(update)
        before = len(self.emulator.messages_to(chat_id))
        update_id = str(update["update_id"])
        target = self.tracker.handled[update_id] + 1 if redeliver else 1
        if redeliver:
            self.emulator.enqueue_raw(update)
        await self.tracker.wait_answered(update_id, target, timeout=15)
        return self.emulator.messages_to(chat_id)[before:]


class Tracker:
    """Follows updates through a runtime: how often each was handled, and whether the replies
    of its last handling are all out (tests wait on it instead of guessing)."""

    def __init__(self) -> None:
        self.handled: Counter[str] = Counter()
        self._unsent: dict[str, set[int]] = {}  # update id -> its replies not yet out
        self._owner: dict[int, str] = {}
        self._changed = asyncio.Condition()
        self._settled: set[int] = set()  # outbox ids out before their update was reported

    def attach(self, runtime: Runtime) -> None:
        runtime.inbox.listeners.append(self._on_handled)
        for worker in runtime.deliveries.values():
            worker.listeners.append(self._on_sent)

    def _on_handled(self, row: Pending, outbox_ids: list[int]) -> None:
        left = {i for i in outbox_ids if i not in self._settled}
        self._settled -= set(outbox_ids)
        self._unsent[row.update_id] = left
        for outbox_id in left:
            self._owner[outbox_id] = row.update_id
        self.handled[row.update_id] += 1
        self._notify()

    def _on_sent(self, outbox_id: int, _sent: bool) -> None:
        owner = self._owner.pop(outbox_id, None)
        if owner is None:
            self._settled.add(outbox_id)
        else:
            self._unsent[owner].discard(outbox_id)
        self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def answered(self, update_id: str, times: int = 1) -> bool:
        return self.handled[update_id] >= times and not self._unsent.get(update_id)

    async def wait_answered(self, update_id: str, times: int = 1, timeout: float = 15) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.answered(update_id, times)), timeout=timeout
            )


_BACKGROUND: set[asyncio.Task[None]] = set()


def _chat_of(update: JSON) -> int:
    if "callback_query" in update:
        return int(update["callback_query"]["message"]["chat"]["id"])
    return int(update["message"]["chat"]["id"])


class Producer:
    """A person on Telegram talking to the bot; every action waits for the bot's answer."""

    def __init__(
        self, bot: BotUnderTest, user_id: int, first_name: str = "Ba", *, consents: bool = True
    ) -> None:
        """`consents`: taps "I agree" whenever the personal-data notice is shown (stories about
        something else); the consent tests themselves pass False."""
        self.bot, self.user_id, self.first_name = bot, user_id, first_name
        self.consents = consents
        self.replies: list[JSON] = []

    @property
    def emulator(self) -> TelegramEmulator:
        return self.bot.emulator

    async def _do(self, update: JSON) -> list[JSON]:
        self.replies = await self._answered(update)
        agree = self._consent_button() if self.consents else None
        if agree is not None:
            message_id, data = agree
            self.replies = await self._answered(self.emulator.press(self.user_id, message_id, data))
        return self.replies

    async def _answered(self, update: JSON) -> list[JSON]:
        """The bot's messages in answer to `update`, once it has handled it."""
        return await self.bot.deliver(update)

    def _consent_button(self) -> tuple[int, str] | None:
        for message in self.replies:
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if str(button.get("callback_data", "")).startswith(CONSENT_DATA):
                        return int(message["message_id"]), str(button["callback_data"])
        return None

    async def say(self, text: str) -> list[JSON]:
        update = self.emulator.send_text(self.user_id, text, first_name=self.first_name)
        return await self._do(update)

    async def tap(self, label: str) -> list[JSON]:
        return await self._do(self.emulator.press_button(self.user_id, label))

    async def press(self, message_id: int, callback_data: str) -> list[JSON]:
        return await self._do(self.emulator.press(self.user_id, message_id, callback_data))

    async def share_contact(self, phone: str) -> list[JSON]:
        update = self.emulator.share_contact(self.user_id, phone, contact_user_id=self.user_id)
        return await self._do(update)

    async def share_location(self, latitude: float, longitude: float) -> list[JSON]:
        return await self._do(self.emulator.share_location(self.user_id, latitude, longitude))

    async def send_document(
        self, file_name: str, content: bytes, *, caption: str | None = None
    ) -> list[JSON]:
        update = self.emulator.send_document(self.user_id, file_name, content, caption=caption)
        return await self._do(update)

    def documents(self) -> list[tuple[str, bytes]]:
        """Files the bot sent in answer to the last action: (name, content)."""
        return [
            (message["document"]["file_name"], message["document"]["content"])
            for message in self.replies
            if message.get("document")
        ]

    async def send_photo(
        self, content: bytes | None = None, *, caption: str | None = None
    ) -> list[JSON]:
        return await self._do(self.emulator.send_photo(self.user_id, content, caption=caption))

    async def redeliver(self, update: JSON) -> list[JSON]:
        """Telegram delivering the same update again (same update_id)."""
        self.replies = await self.bot.deliver(update, redeliver=True)
        return self.replies

    async def notified(self, text: str, timeout: float = 15.0) -> str:
        """Wait for a notification (sent by the outbox, not as a reply) containing `text`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            messages = self.emulator.messages_to(self.user_id)
            for message in messages:
                if text in (message.get("text") or message.get("caption") or ""):
                    return str(message.get("text") or message.get("caption"))
            await self.emulator.wait_for_messages(
                self.user_id, len(messages) + 1, timeout=max(0.01, deadline - loop.time())
            )

    @property
    def text(self) -> str:
        """Everything the bot said in answer to the last action."""
        return "\n".join(message.get("text") or "" for message in self.replies)

    def buttons(self) -> list[str]:
        """Inline button labels of the newest message that has any."""
        for message in reversed(self.emulator.messages_to(self.user_id)):
            markup = message.get("reply_markup") or {}
            rows = markup.get("inline_keyboard")
            if rows:
                return [button["text"] for row in rows for button in row]
        return []

    def keyboard(self) -> JSON | None:
        """The reply keyboard (contact/location requests) of the last answer, if it had one."""
        for message in reversed(self.replies):
            markup = message.get("reply_markup")
            if markup and "keyboard" in markup:
                return dict(markup)
        return None
