"""Nothing lost at the edges: producers register through `ocop-bot run` while it is SIGKILLed.

The bot runs as a deployment runs it (the installed console script, a SQLite file), against the
emulator over HTTP, by long polling and by webhook. A reference producer goes through the form
first; then twenty producers go through it at once while the process is killed at random moments
and started again. Each must end up with exactly the reference's messages, in its order (no
answer lost, none sent twice), and with one registration holding every answer as given.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.emulator import TelegramEmulator
from bot.emulator.faults import Limits
from models.db import create_engine, create_sessionmaker
from models.registrations import Registration
from models.users import User
from tests.harness import start_ocop_bot, stop_ocop_bot

PRODUCERS = 20
KILLS = 5
PHONE = "+84905123456"
# (action, value): the form of a new product, as tests/flows.py answers it.
SCRIPT: tuple[tuple[str, str], ...] = (
    ("say", "/dangky"),
    ("tap", "Sản phẩm mới"),
    ("tap", "Sa Huỳnh"),
    ("say", "Nước mắm cá cơm"),
    ("tap", "Thực phẩm"),
    ("tap", "Hợp tác xã"),
    ("say", "HTX Nước mắm Sa Huỳnh"),
    ("say", "Nguyễn Văn A"),
    ("say", "Thôn Thạnh Đức, phường Sa Huỳnh"),
    ("say", "Bỏ qua"),
    ("contact", PHONE),
    ("tap", "4 sao"),
    ("tap", "Có"),
    ("tap", "Gửi hồ sơ"),
)
CODE = re.compile(r"OCOP-\d{4}-\d{4}")
# A reply on the wire when the process is killed may have reached Telegram with no time left to
# record it: sent again after the restart. No Bot API call can tell, so that instant is the one
# place a reply may come twice; a copy whose first was accepted this long before a kill counts.
IN_DOUBT = 0.25
# A step's answer arrives within this, whatever the kills: a restart (migrations, connecting)
# takes a few seconds on a busy machine, and each reply waits for its chat's 1 s interval.
STEP_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _act(emulator: TelegramEmulator, user: int, action: str, value: str) -> None:
    if action == "say":
        emulator.send_text(user, value, first_name="Ba")
    elif action == "tap":
        while True:  # the button comes with the question, which may still be on its way
            try:
                emulator.press_button(user, value)
                return
            except AssertionError:
                count = len(emulator.messages_to(user))
                await emulator.wait_for_messages(user, count + 1, timeout=STEP_TIMEOUT)
    else:
        emulator.share_contact(user, value, contact_user_id=user)


def _texts(emulator: TelegramEmulator, user: int) -> list[str]:
    return [CODE.sub("CODE", text) for text in emulator.texts_to(user)]


async def _walk(
    emulator: TelegramEmulator,
    user: int,
    counts: list[int] | None,
    expected: list[str] | None = None,
) -> list[int]:
    """Go through the form; after each step wait for its whole answer (the reference's count of
    messages by then, or, for the reference itself, until the chat is quiet)."""
    seen: list[int] = []
    for index, (action, value) in enumerate(SCRIPT):
        before = len(emulator.messages_to(user))
        await _act(emulator, user, action, value)
        if counts is not None and expected is not None:
            await emulator.wait_for_messages(user, counts[index], timeout=STEP_TIMEOUT)
        else:
            await emulator.wait_for_messages(user, before + 1, timeout=STEP_TIMEOUT)
            await emulator.wait_idle(timeout=STEP_TIMEOUT, quiet=1.5)
        seen.append(len(emulator.messages_to(user)))
    return seen


def _without_doubtful_copies(
    emulator: TelegramEmulator, user: int, kills: list[float]
) -> tuple[list[str], int]:
    """The chat's texts with each copy of the message before it dropped where that message was
    accepted in the instant before a kill; and how many were dropped."""
    texts, times = _texts(emulator, user), emulator.delivery_times(user)
    kept: list[str] = []
    dropped = 0
    for index, text in enumerate(texts):
        if kept and text == kept[-1] and index > 0:
            first = times[index - 1]
            if any(0 <= kill - first <= IN_DOUBT for kill in kills):
                dropped += 1
                continue
        kept.append(text)
    return kept, dropped


async def _killer(
    start: Callable[[], Any],
    holder: dict[str, asyncio.subprocess.Process],
    done: asyncio.Event,
    kills_at: list[float],
) -> int:
    rng = random.Random(os.getpid())
    kills = 0
    while kills < KILLS or not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), timeout=rng.uniform(0.3, 2.5))
        except TimeoutError:
            pass
        if done.is_set() and kills >= KILLS:
            break
        process = holder["bot"]
        process.send_signal(signal.SIGKILL)
        kills_at.append(time.monotonic())
        await process.wait()
        kills += 1
        holder["bot"] = await start()
    return kills


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_producers_lose_nothing_while_the_bot_is_killed(
    tmp_path: Path, emulator: TelegramEmulator, mode: str
) -> None:
    emulator.limits = Limits(overall_per_second=30, per_chat_interval=1.0)
    url = f"sqlite+aiosqlite:///{tmp_path}/ocop.db"
    environment = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.api_url,
        "DATABASE_URL": url,
        "OCOP_ADMINS": "",
    }
    if mode == "webhook":
        port = _free_port()
        environment |= {
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook",
            "WEBHOOK_PORT": str(port),
            "WEBHOOK_SECRET": "chaos-secret",
        }

    async def start() -> asyncio.subprocess.Process:
        return await start_ocop_bot(tmp_path, environment)

    holder = {"bot": await start()}
    try:
        reference = 7_000_000
        counts = await _walk(emulator, reference, None)
        expected = _texts(emulator, reference)
        assert any("CODE" in text for text in expected), expected  # the receipt

        done = asyncio.Event()
        kills_at: list[float] = []
        killer = asyncio.create_task(_killer(start, holder, done, kills_at))
        users = [7_000_001 + n for n in range(PRODUCERS)]
        try:
            await asyncio.gather(*(_walk(emulator, user, counts, expected) for user in users))
        finally:
            done.set()
            kills = await killer
        await emulator.wait_idle(timeout=STEP_TIMEOUT, quiet=2.0)
    finally:
        process = holder["bot"]
        loop = asyncio.get_running_loop()
        stopping = loop.time()
        log = await stop_ocop_bot(process, timeout=30)
        stopped_in = loop.time() - stopping
    assert process.returncode == 0, log[-3000:]
    assert stopped_in < 10, f"SIGTERM took {stopped_in:.1f} s"
    assert kills >= KILLS

    doubtful = 0
    for user in users:
        texts, dropped = _without_doubtful_copies(emulator, user, kills_at)
        assert texts == expected, f"chat {user}: {_texts(emulator, user)}"
        doubtful += dropped
    assert doubtful <= kills  # at most the one reply on the wire at each kill, per chat chain

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            rows = (
                await session.execute(
                    select(User.channel_user_id, Registration)
                    .join(Registration, Registration.submitted_by_user_id == User.id)
                    .where(User.channel_user_id.in_([str(u) for u in users]))
                )
            ).all()
            count = await session.scalar(select(func.count()).select_from(Registration))
    finally:
        await engine.dispose()
    assert sorted(int(user) for user, _r in rows) == users  # exactly one each
    assert count == PRODUCERS + 1
    for _user, registration in rows:
        assert registration.product_name == "Nước mắm cá cơm"
        assert registration.subject_name == "HTX Nước mắm Sa Huỳnh"
        assert registration.owner_name == "Nguyễn Văn A"
        assert registration.address == "Thôn Thạnh Đức, phường Sa Huỳnh"
        assert registration.phone.replace(" ", "").endswith("905123456")
        assert registration.ecommerce is True
