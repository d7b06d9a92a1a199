"""Kill chaos: producers register through `ocop-bot run` while it is SIGKILLed at random moments.

The bot runs as a deployment runs it (the installed console script, a SQLite file), against the
emulator over HTTP, by long polling or by webhook. A reference producer goes through the form
first; then the producers go through it at once while the process is killed and started again.
Each must end with exactly the reference's messages, in its order (no answer lost, none sent
twice but the one on the wire at a kill), and with one registration holding every answer.

`tests/test_chaos.py` runs the short form (20 producers, 5 kills); `make bench` the long one
(`BENCH_CHAOS_PRODUCERS`, default 200, `BENCH_CHAOS_KILLS`, default 50); alone:
`.venv/bin/python -m bench.chaos`.
"""

from __future__ import annotations

import asyncio
import difflib
import itertools
import os
import random
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.emulator import TelegramEmulator
from bot.emulator.faults import Limits
from models.db import create_engine, create_sessionmaker
from models.outbox import OutboxMessage
from models.registrations import Registration
from models.users import User

OCOP_BOT = str(Path(sys.executable).with_name("ocop-bot"))  # the installed console script


_logs: dict[int, Path] = {}  # a started process's output file, by pid
_started = itertools.count(1)


async def start_ocop_bot(folder: Path, environment: dict[str, str]) -> asyncio.subprocess.Process:
    """`ocop-bot run` as a deployment starts it, in `folder`; both output streams go to a file
    of their own there (a pipe nobody reads would fill and stop the bot in a log call)."""
    path = folder / f"ocop-bot-{next(_started)}.log"
    with path.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            OCOP_BOT,
            "run",
            cwd=folder,
            env=environment,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    _logs[process.pid] = path
    return process


def output_of(process: asyncio.subprocess.Process) -> str:
    """Everything the process wrote so far."""
    return _logs[process.pid].read_text(errors="replace")


async def stop_ocop_bot(process: asyncio.subprocess.Process, timeout: float = 30.0) -> str:  # noqa: ASYNC109
    """SIGTERM, as a service manager stops it; returns everything it wrote."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), timeout=timeout)
    return output_of(process)


PHONE = "+84905123456"
# (action, value): the form of a new product, as tests/flows.py answers it.
SCRIPT: tuple[tuple[str, str], ...] = (
    ("say", "/dangky"),
    ("tap", "Đồng ý"),  # the personal-data notice
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
# A step's answer arrives within this, whatever the kills: a restart (migrations, connecting)
# takes a few seconds on a busy machine, and each reply waits for its chat's 1 s interval.
STEP_TIMEOUT = 300.0


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
    emulator: TelegramEmulator, user: int, recorded: set[str]
) -> tuple[list[str], int]:
    """The chat's texts with each copy dropped whose first was never recorded as sent: a reply
    accepted by Telegram when its process was killed before it could write so. No Bot API call
    can tell such a send from a lost one, so it is sent again: the one place a reply may come
    twice. A copy of a reply the bot had recorded as sent is kept (and makes the chat wrong).
    Returns the texts and how many copies were dropped."""
    messages = [m for m in emulator.messages_to(user) if (m["text"] or m["caption"]) is not None]
    kept: list[str] = []
    dropped = 0
    for index, message in enumerate(messages):
        text = CODE.sub("CODE", message["text"] or message["caption"])
        if kept and index > 0 and text == kept[-1]:
            if str(messages[index - 1]["message_id"]) not in recorded:
                dropped += 1
                continue
        kept.append(text)
    return kept, dropped


def _difference(
    expected: list[str], emulator: TelegramEmulator, user: int, kills: list[float]
) -> list[str]:
    """What a chat got that the reference did not (+) and the other way round (-), each
    message shortened, with when it was accepted against the nearest kill."""
    texts, times = _texts(emulator, user), emulator.delivery_times(user)

    def when(index: int) -> str:
        nearest = min(kills, key=lambda kill: abs(kill - times[index]), default=None)
        return "" if nearest is None else f" ({times[index] - nearest:+.2f} s from a kill)"

    lines = []
    matcher = difflib.SequenceMatcher(a=expected, b=texts, autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        lines += [f"- {text[:50]!r}" for text in expected[a1:a2]]
        lines += [f"+ {texts[i][:50]!r}{when(i)}" for i in range(b1, b2)]
    return lines


class BotExited(AssertionError):
    """`ocop-bot run` ended without being killed: a crash, never a thing to wait out."""


async def _up(emulator: TelegramEmulator, process: asyncio.subprocess.Process, calls: int) -> None:
    """Until the process started at `calls` emulator calls is serving (it asked for updates or
    set its webhook): its start-up takes what the machine gives it, so it is waited for, not
    guessed. Raises BotExited if it ends first."""
    serving = ("getupdates", "setwebhook")

    def asked() -> bool:
        return any(name.lower() in serving for name, _ in emulator.calls[calls:])

    while not asked():
        if process.returncode is not None:
            raise BotExited(f"ocop-bot exited with {process.returncode}:\n{output_of(process)}")
        # Short waits only to look at the process again; the condition is the emulator's.
        await emulator._wait_until(asked, 0.5)


async def _killer(
    start: Callable[[], Any],
    emulator: TelegramEmulator,
    holder: dict[str, asyncio.subprocess.Process],
    done: asyncio.Event,
    kills_at: list[float],
    at_least: int,
    between: tuple[float, float],
) -> int:
    """SIGKILL, start again, and again, until the producers are done. Most kills come a random
    while after the new process is serving, so every life handles something however slow the
    machine; one in five comes during start-up (migrations, lease hand-back, first poll)."""
    rng = random.Random(os.getpid())
    kills = 0
    calls = 0
    while kills < at_least or not done.is_set():
        process = holder["bot"]
        if rng.random() >= 0.2:
            await _up(emulator, process, calls)
        try:
            await asyncio.wait_for(done.wait(), timeout=rng.uniform(*between))
        except TimeoutError:
            pass
        if done.is_set() and kills >= at_least:
            break
        if process.returncode is not None:
            raise BotExited(f"ocop-bot exited with {process.returncode}:\n{output_of(process)}")
        process.send_signal(signal.SIGKILL)
        kills_at.append(time.monotonic())
        await process.wait()
        kills += 1
        calls = len(emulator.calls)
        holder["bot"] = await start()
    return kills


@dataclass
class Chaos:
    producers: int
    kills: int
    stopped_in: float  # seconds SIGTERM took at the end
    returncode: int | None
    log: str
    wrong: dict[int, list[str]] = field(default_factory=dict)  # chats whose messages differ
    doubtful: int = 0  # copies of a reply on the wire at a kill
    most_copies: int = 0  # the most copies any one chat got
    registrations: dict[int, int] = field(default_factory=dict)  # per producer
    incomplete: list[int] = field(default_factory=list)  # registrations missing an answer

    @property
    def passed(self) -> bool:
        return (
            self.returncode == 0
            and self.stopped_in < 10
            and not self.wrong
            and self.most_copies <= self.kills
            and set(self.registrations.values()) == {1}
            and len(self.registrations) == self.producers
            and not self.incomplete
        )


async def chaos(
    folder: Path,
    emulator: TelegramEmulator,
    producers: int,
    kills: int,
    mode: str,
    between: tuple[float, float] = (0.3, 2.5),
) -> Chaos:
    """`between`: the range of seconds between two kills (a restart takes one or two)."""
    emulator.limits = Limits(overall_per_second=30, per_chat_interval=1.0)
    url = f"sqlite+aiosqlite:///{folder}/ocop.db"
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
            "WEBHOOK_SECRET": "chaos-secret-0123456789abcdefghijklmnop",
        }

    async def start() -> asyncio.subprocess.Process:
        return await start_ocop_bot(folder, environment)

    holder = {"bot": await start()}
    users = [7_000_001 + n for n in range(producers)]
    kills_at: list[float] = []
    killed = 0
    try:
        reference = 7_000_000
        counts = await _walk(emulator, reference, None)
        expected = _texts(emulator, reference)
        if not any("CODE" in text for text in expected):  # the receipt
            raise AssertionError(f"the reference got no receipt: {expected}")
        done = asyncio.Event()
        killer = asyncio.create_task(
            _killer(start, emulator, holder, done, kills_at, kills, between)
        )
        walks = asyncio.gather(*(_walk(emulator, user, counts, expected) for user in users))
        try:
            # A bot that exits by itself ends the run at once, with its output.
            await asyncio.wait({killer, walks}, return_when=asyncio.FIRST_COMPLETED)
            if killer.done() and killer.exception() is not None:
                walks.cancel()
            await walks
        finally:
            done.set()
            killed = await killer
        await emulator.wait_idle(timeout=STEP_TIMEOUT, quiet=2.0)
    finally:
        process = holder["bot"]
        stopping = time.monotonic()
        log = await stop_ocop_bot(process, timeout=30)
        stopped_in = time.monotonic() - stopping
    result = Chaos(producers, killed, stopped_in, process.returncode, log[-3000:])
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            recorded: dict[int, set[str]] = {}
            for chat_id, message_id in await session.execute(
                select(OutboxMessage.chat_id, OutboxMessage.message_id).where(
                    OutboxMessage.message_id.is_not(None)
                )
            ):
                recorded.setdefault(int(chat_id), set()).add(str(message_id))
            for user in users:
                texts, dropped = _without_doubtful_copies(emulator, user, recorded.get(user, set()))
                result.doubtful += dropped
                result.most_copies = max(result.most_copies, dropped)
                if texts != expected:
                    result.wrong[user] = _difference(expected, emulator, user, kills_at)
            rows = (
                await session.execute(
                    select(User.channel_user_id, Registration)
                    .join(Registration, Registration.submitted_by_user_id == User.id)
                    .where(User.channel_user_id.in_([str(u) for u in users]))
                )
            ).all()
            counted = await session.execute(
                select(User.channel_user_id, func.count(Registration.id))
                .join(Registration, Registration.submitted_by_user_id == User.id)
                .where(User.channel_user_id.in_([str(u) for u in users]))
                .group_by(User.channel_user_id)
            )
            result.registrations = {int(user): int(count) for user, count in counted}
    finally:
        await engine.dispose()
    for user, registration in rows:
        given = (
            registration.product_name == "Nước mắm cá cơm"
            and registration.subject_name == "HTX Nước mắm Sa Huỳnh"
            and registration.owner_name == "Nguyễn Văn A"
            and registration.address == "Thôn Thạnh Đức, phường Sa Huỳnh"
            and registration.phone.replace(" ", "").endswith("905123456")
            and registration.ecommerce is True
        )
        if not given:
            result.incomplete.append(int(user))
    return result


def summary(result: Chaos, mode: str) -> str:
    return (
        f"kill chaos ({mode}): {result.producers} producers, {result.kills} SIGKILLs: "
        f"{len(result.wrong)} chats with a lost or doubled answer, {result.doubtful} copies on "
        f"the wire at a kill, {sum(result.registrations.values())} registrations "
        f"({len(result.incomplete)} incomplete), SIGTERM {result.stopped_in:.1f} s"
    )


async def main() -> Chaos:
    producers = int(os.environ.get("BENCH_CHAOS_PRODUCERS", "200"))
    kills = int(os.environ.get("BENCH_CHAOS_KILLS", "50"))
    emulator = TelegramEmulator()
    await emulator.start()
    try:
        folder = Path(tempfile.mkdtemp(prefix="ocop-chaos-"))
        # Kills further apart than in the test: with 200 producers each restart has a backlog.
        return await chaos(folder, emulator, producers, kills, "polling", (1.0, 6.0))
    finally:
        await emulator.stop()


if __name__ == "__main__":
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    print(summary(asyncio.run(main()), "polling"), flush=True)
