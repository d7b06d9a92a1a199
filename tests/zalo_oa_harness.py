"""Drives the real Zalo OA channel over the OA + ZNS emulator: a running OABot on its webhook,
and people who follow the OA, write to it and wait for its answers (never by sleeping)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.app import build_runtime
from bot.channels.zalo_oa_bot import OABot
from bot.emulator.zalo_oa import ZaloOAEmulator
from bot.jobs import ReminderJob
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.context import Services
from models.admin_units import Area
from models.db import create_sessionmaker
from models.outbox import Pacing
from models.zalo_oa import OASend
from tests.harness import Clock, Tracker
from tests.zalo_harness import CONSENT_QUESTION, start_channel, stop_channel

JSON = dict[str, Any]
T = TypeVar("T")
START = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)  # 10:00 in Vietnam
REMINDER_TEMPLATE = "250001"
REMINDER_PARAMS = {"ten_san_pham": "product", "ngay_het_han": "expiry_date", "so_ngay": "days_left"}
_NUMBERED = re.compile(r"^(\d+)\. (.+)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def oa_settings(settings: Settings, emulator: ZaloOAEmulator, **extra: Any) -> Settings:
    """The test settings with only the OA channel's credentials pointed at the emulator."""
    port = free_port()
    emulator.webhook_url = f"http://127.0.0.1:{port}/zalo-oa/webhook"
    emulator.templates[REMINDER_TEMPLATE] = set(REMINDER_PARAMS)
    return settings.model_copy(
        update={
            "zalo_oa_app_id": emulator.app_id,
            "zalo_oa_app_secret": emulator.app_secret,
            "zalo_oa_secret_key": emulator.oa_secret,
            "zalo_oa_refresh_token": emulator.refresh_token,
            "zalo_oa_token_key": Fernet.generate_key().decode(),
            "zalo_oa_oauth_url": emulator.base_url,
            "zalo_oa_api_url": emulator.base_url,
            "zalo_zns_api_url": emulator.base_url,
            "zalo_oa_webhook_port": port,
            "zalo_zns_reminder_template": REMINDER_TEMPLATE,
            "zalo_zns_reminder_params": REMINDER_PARAMS,
            **extra,
        }
    )


class OABotUnderTest:
    """The OA channel alone, as `ocop-bot run` serves it with only ZALO_OA_APP_ID set."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, emulator: ZaloOAEmulator, clock: Clock
    ) -> None:
        self.settings, self.engine, self.emulator, self.clock = settings, engine, emulator, clock
        self.services = Services(
            area=Area(
                settings.ocop_province_code, settings.ocop_commune_codes, settings.ocop_area_name
            ),
            timezone=ZoneInfo(settings.ocop_timezone),
            clock=clock,
        )
        self.handled = Tracker()
        self.oa: OABot | None = None
        self.runtime: Runtime | None = None

    async def start(self) -> None:
        runtime = build_runtime(self.settings, self.engine, self.services)
        oa = OABot(
            self.settings,
            self.engine,
            self.clock,
            pacing=Pacing(self.settings.ocop_delivery_rate, private_interval=0.0),
        )
        oa.sender.queued = runtime.wake_deliveries
        await start_channel(runtime, oa, self.handled)
        self.oa, self.runtime = oa, runtime

    async def stop(self) -> None:
        oa, self.oa = self.oa, None
        runtime, self.runtime = self.runtime, None
        await stop_channel(runtime, oa)

    async def run_reminders(self) -> None:
        """The reminder job's tick at the clock's time (its messages go out after)."""
        assert self.oa is not None
        job = ReminderJob(create_sessionmaker(self.engine), self.services, self.oa.wake)
        await job(cast(Any, None))  # the job ignores PTB's context

    async def sends(
        self, done: Callable[[list[OASend]], bool], timeout: float = 15
    ) -> list[OASend]:
        """Wait until the recorded OA sends satisfy `done`; returns them."""

        async def check(session: AsyncSession) -> list[OASend] | None:
            rows = list(await session.scalars(select(OASend).order_by(OASend.id)))
            return rows if done(rows) else None

        return await self.until(check, timeout)

    async def until(
        self, check: Callable[[AsyncSession], Awaitable[T | None]], timeout: float = 15
    ) -> T:
        """Wait until `check` finds what it looks for (checked after each delivery write)."""
        assert self.oa is not None
        worker = self.oa.worker
        async with asyncio.timeout(timeout):
            while True:
                # Checked holding the condition, so a write that ends meanwhile is not missed.
                async with worker.flushed:
                    async with create_sessionmaker(self.engine, read_only=True)() as session:
                        found = await check(session)
                    if found is not None:
                        return found
                    worker.wake()
                    await worker.flushed.wait()


class OAUser:
    """A person on Zalo writing to the OA; every action waits until the bot handled it."""

    def __init__(self, bot: OABotUnderTest, user_id: str) -> None:
        self.bot, self.emulator, self.user_id = bot, bot.emulator, user_id
        self.replies: list[JSON] = []

    async def _after(self, act: Callable[[], Any]) -> list[JSON]:
        before = len(self.emulator.texts_to(self.user_id))
        event = await act()
        update_id = event.get("message", {}).get("msg_id") or (
            f"{event['event_name']}:{self.user_id}:{event['timestamp']}"
        )
        await self.bot.handled.wait_answered(str(update_id))
        self.replies = [m for m in self.emulator.sent if m["user_id"] == self.user_id][before:]
        if CONSENT_QUESTION in self.text:  # the personal-data notice: agreed, as people do here
            return await self.say("Đồng ý")
        return self.replies

    async def follow(self) -> list[JSON]:
        return await self._after(lambda: self.emulator.follow(self.user_id))

    async def say(self, text: str) -> list[JSON]:
        return await self._after(lambda: self.emulator.send_text(self.user_id, text))

    async def send_image(self, content: bytes | None = None, caption: str = "") -> list[JSON]:
        return await self._after(lambda: self.emulator.send_image(self.user_id, content, caption))

    @property
    def text(self) -> str:
        return "\n".join(message["text"] for message in self.replies)

    def number(self, label: str) -> str:
        for text in reversed(self.emulator.texts_to(self.user_id)):
            for line in text.splitlines():
                found = _NUMBERED.match(line)
                if found and label in found.group(2):
                    return found.group(1)
        raise AssertionError(f"no menu line with {label!r}; the bot said:\n{self.text}")

    async def choose(self, label: str) -> list[JSON]:
        return await self.say(self.number(label))

    async def tap(self, label: str) -> list[JSON]:
        """Tap the OA button whose title has `label`: Zalo sends its payload as a text."""
        for message in reversed(self.replies):
            for button in message["buttons"]:
                if label in button["title"]:
                    return await self.say(button["payload"])
        raise AssertionError(f"no button {label!r} under the bot's last answer:\n{self.text}")


@pytest.fixture
def oa_clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def oa_emulator(oa_clock: Clock) -> AsyncIterator[ZaloOAEmulator]:
    server = ZaloOAEmulator(oa_clock)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def oa_bot(
    settings: Settings, engine: AsyncEngine, oa_emulator: ZaloOAEmulator, oa_clock: Clock
) -> AsyncIterator[OABotUnderTest]:
    running = OABotUnderTest(oa_settings(settings, oa_emulator), engine, oa_emulator, oa_clock)
    await running.start()
    yield running
    await running.stop()
