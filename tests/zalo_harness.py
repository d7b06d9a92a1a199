"""Drives the real Zalo channel over the Zalo emulator: a running ZaloBot, and Zalo users who
talk to it and wait for its answers (never by sleeping: the channel says when it is done)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import WithoutTelegram
from bot.channels.zalo_bot import ZaloBot
from bot.emulator.zalo import ZaloEmulator
from bot.jobs import ReminderJob
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.context import Services
from models.admin_units import Area
from models.db import create_sessionmaker
from models.outbox import Pacing
from tests.harness import Clock, Tracker, drain_outbox

JSON = dict[str, Any]
_NUMBERED = re.compile(r"^(\d+)\. (.+)$")
# The last line of the personal-data notice; the consent tests answer it themselves.
CONSENT_QUESTION = "Ông/Bà có đồng ý để lưu và dùng"


async def start_channel(runtime: Any, adapter: Any, handled: Handled) -> None:
    """A Zalo adapter (Bot Platform or Official Account) on the runtime, as `serve` wires it."""
    adapter.channel.recorder = runtime.recorder
    runtime.add_channel(adapter.channel, adapter)
    handled.attach(runtime)
    await adapter.open()
    await runtime.start()


async def stop_channel(runtime: Any | None, adapter: Any | None) -> None:
    if runtime is not None:
        await runtime.stop()
    if adapter is not None:
        await adapter.close()


class Handled(Tracker):
    """Follows a runtime's Zalo updates: how many times each message id went through, and
    whether its replies are all out."""

    @property
    def counts(self) -> Counter[str]:
        return self.handled

    def attach(self, runtime: Runtime) -> Handled:
        super().attach(runtime)
        return self

    async def wait(self, message_id: str, times: int = 1, timeout: float = 15.0) -> None:
        await self.wait_answered(message_id, times, timeout)


class ZaloBotUnderTest:
    """The Zalo channel alone, as `ocop-bot run` serves it with only ZALO_BOT_TOKEN set."""

    def __init__(self, settings: Settings, engine: AsyncEngine, emulator: ZaloEmulator) -> None:
        self.settings, self.engine, self.emulator = settings, engine, emulator
        self.clock = Clock(dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC))
        self.services = Services(
            area=Area(
                settings.ocop_province_code, settings.ocop_commune_codes, settings.ocop_area_name
            ),
            timezone=ZoneInfo(settings.ocop_timezone),
            clock=self.clock,
        )
        self.handled = Handled()
        self.serving: WithoutTelegram | None = None
        self.zalo: ZaloBot | None = None
        self.runtime: Runtime | None = None

    async def start(self) -> None:
        """Wired and started as `ocop-bot run` does with no Telegram token (bot/app.py)."""
        serving = WithoutTelegram(
            self.settings.model_copy(update={"telegram_bot_token": None}),
            engine=self.engine,
            services=self.services,
            pacing=Pacing(self.settings.ocop_delivery_rate, private_interval=0.0),
            poll_timeout=5,
            retry_delay=0.05,
        )
        [zalo] = serving.adapters
        assert isinstance(zalo, ZaloBot)
        self.handled.attach(serving.runtime)
        await serving.start()
        self.serving, self.zalo, self.runtime = serving, zalo, serving.runtime

    async def stop(self) -> None:
        serving, self.serving = self.serving, None
        self.zalo = self.runtime = None
        if serving is not None:
            await serving.stop()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def drain(self, timeout: float = 30.0) -> None:
        assert self.zalo is not None
        await drain(self.engine, self.zalo, timeout)

    async def run_reminders(self) -> None:
        """The reminder job's tick at the clock's time, then its notifications delivered."""
        assert self.zalo is not None
        job = ReminderJob(create_sessionmaker(self.engine), self.services, self.zalo.wake)
        await job(cast(Any, None))  # the job ignores PTB's context
        await self.drain()


async def drain(engine: AsyncEngine, zalo: ZaloBot, timeout: float = 30.0) -> None:
    """Wait until the outbox has nothing left to send (each message sent or given up)."""
    await drain_outbox(engine, zalo.worker, timeout)


class ZaloUser:
    """A person on Zalo talking to the bot; every action waits until the bot handled it."""

    def __init__(
        self,
        emulator: ZaloEmulator,
        handled: Handled,
        user_id: str,
        name: str = "Bà Năm",
        *,
        consents: bool = True,
    ) -> None:
        """`consents`: answers "Đồng ý" whenever the personal-data notice is shown."""
        self.emulator, self.handled, self.user_id, self.name = emulator, handled, user_id, name
        self.consents = consents
        self.replies: list[JSON] = []
        self.last_update: JSON = {}

    async def _after(self, send: Any) -> list[JSON]:
        before = len(self.emulator.messages_to(self.user_id))
        update = send()
        await self.handled.wait(str(update["message"]["message_id"]))
        self.replies = self.emulator.messages_to(self.user_id)[before:]
        self.last_update = update
        if self.consents and CONSENT_QUESTION in self.text:
            return await self.say("Đồng ý")
        return self.replies

    async def say(self, text: str) -> list[JSON]:
        return await self._after(
            lambda: self.emulator.send_text(self.user_id, text, display_name=self.name)
        )

    async def send_sticker(self) -> list[JSON]:
        return await self._after(lambda: self.emulator.send_sticker(self.user_id))

    async def send_image(self, content: bytes | None = None, caption: str = "") -> list[JSON]:
        return await self._after(
            lambda: self.emulator.send_image(self.user_id, caption, content=content)
        )

    async def send_unsupported(self) -> list[JSON]:
        """A voice message, a location, a file: Zalo reports them all as "unsupported"."""
        return await self._after(lambda: self.emulator.send_unsupported(self.user_id))

    async def redeliver(self, update: JSON) -> list[JSON]:
        """Zalo delivering the same message again (same message id)."""
        message_id = str(update["message"]["message_id"])
        times = self.handled.counts[message_id] + 1
        before = len(self.emulator.messages_to(self.user_id))
        self.emulator.enqueue_raw(update)
        await self.handled.wait(message_id, times)
        self.replies = self.emulator.messages_to(self.user_id)[before:]
        return self.replies

    @property
    def text(self) -> str:
        """Everything the bot said in answer to the last action."""
        return "\n".join(message["text"] or "" for message in self.replies)

    def number(self, label: str) -> str:
        """The number of the newest menu line that contains `label`."""
        for message in reversed(self.emulator.messages_to(self.user_id)):
            for line in (message["text"] or "").splitlines():
                found = _NUMBERED.match(line)
                if found and label in found.group(2):
                    return found.group(1)
        raise AssertionError(f"no menu line with {label!r}; the bot said:\n{self.text}")

    async def choose(self, label: str) -> list[JSON]:
        """Answer a menu the way most producers will: with the option's number."""
        return await self.say(self.number(label))

    async def notified(self, text: str, timeout: float = 15.0) -> str:
        """Wait for a message (a notification from the outbox) containing `text`."""
        async with asyncio.timeout(timeout):
            while True:
                messages = self.emulator.messages_to(self.user_id)
                for message in messages:
                    if text in (message["text"] or ""):
                        return str(message["text"])
                await self.emulator.wait_for_messages(self.user_id, len(messages) + 1, timeout)


async def answer_by_numbers(user: ZaloUser, product: str = "Nước mắm cá cơm") -> None:
    """From the typed command word to the summary, choosing every option by its number."""
    await user.say("dangky")
    assert "Ông/Bà muốn đăng ký gì?" in user.text
    assert "1. Sản phẩm mới" in user.text and "Trả lời 1, 2 hoặc 3." in user.text
    await user.say("1")
    assert "xã/phường nào" in user.text
    await user.choose("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in user.text
    await user.say(product)
    await user.choose("Thực phẩm")
    assert "hình thức nào" in user.text
    await user.choose("Hợp tác xã")
    await user.say("HTX Nước mắm Sa Huỳnh")
    await user.say("Nguyễn Văn A")
    await user.say("Thôn Thạnh Đức, phường Sa Huỳnh")
    assert "vị trí" in user.text and "Zalo không gửi được vị trí." in user.text
    await user.choose("Bỏ qua")
    assert "Số điện thoại" in user.text and "gõ số điện thoại" in user.text
    await user.say("0905 123 456")
    await user.choose("4 sao")
    assert "thương mại điện tử" in user.text
    await user.choose("Có")
    assert "Kiểm tra lại hồ sơ đăng ký" in user.text


def zalo_settings(settings: Settings, emulator: ZaloEmulator, **extra: Any) -> Settings:
    """The test settings with the Zalo channel pointed at the emulator."""
    return settings.model_copy(
        update={"zalo_bot_token": emulator.token, "zalo_api_url": emulator.api_url, **extra}
    )


@pytest.fixture
async def zalo_emulator() -> AsyncIterator[ZaloEmulator]:
    server = ZaloEmulator()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def zalo_bot(
    settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> AsyncIterator[ZaloBotUnderTest]:
    """Zalo alone: the Telegram token of `settings` is not used."""
    running = ZaloBotUnderTest(zalo_settings(settings, zalo_emulator), engine, zalo_emulator)
    await running.start()
    yield running
    await running.stop()
