"""Idle memory per conversation: resident memory of the running bot with 10,000 registration
forms in progress, minus with none (target <= 20 MB: the state lives in the database).

A fresh interpreter runs the real `Application` (`build_application`, post_init as `run_polling`
does: commands published, admins, jobs, the outbox worker) on a fresh SQLite file. Its replies
go through an in-process fake Bot API (`bench.local_api`, which keeps nothing); its delivery bot
talks to the emulator in a process of its own.

The 10,000 forms are put in the database first, as a bot restarted in the middle of the day
finds them (kind and commune answered, the product's name asked), so nothing of theirs is in the
process when the first figure is taken. Then each chat sends one real update, the product's name,
through the inbox, as a receiver records them: the bot loads the form, stores the answer, asks the
product group, as it would for a producer. 300 warm-up chats go through the same step and cancel
first, so caches are warm. Both figures come from /proc/self/statm after `gc.collect()`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from telegram.ext import Application

from bench.local_api import LocalBotApi, text_update
from bench.rss import rss_mb
from bench.transport import TOKEN, start_application, start_emulator, stop_application
from bot.app import build_application
from bot.channels.telegram import incoming
from bot.migrate import upgrade
from bot.runtime import Runtime
from bot.settings import Settings
from models.base import utcnow
from models.conversations import Conversation
from models.db import create_engine, create_sessionmaker
from models.domain import Role
from models.inbox import Pending
from models.outbox import Pacing
from models.users import User

ROOT = Path(__file__).resolve().parent.parent  # the child runs `-m bench.memory` from here
FIRST_CHAT = 10_000_000
FIRST_WARMUP = 1
TARGET_MB = 20.0
PRODUCT = "Nước mắm cá cơm"
# A form after "/dangky", "Sản phẩm mới" and a commune button: it asks for the product's name.
MID_FORM = {"kind": "new", "commune": "21439", "commune_input": None, "legacy_commune": None}


@dataclass(frozen=True)
class MemoryResult:
    conversations: int
    in_progress: int  # forms that took the update's answer (now asking for the group)
    rss_none_mb: float
    rss_busy_mb: float
    updates_per_second: float  # one update per conversation (for information)
    python_blocks: int  # growth of the objects Python allocated (sys.getallocatedblocks)
    ptb_marks_mb: float  # of the growth: PTB's persistence marks (see _persistence_marks_mb)
    database_mb: float

    @property
    def delta_mb(self) -> float:
        return self.rss_busy_mb - self.rss_none_mb

    @property
    def per_conversation_kb(self) -> float:
        return self.delta_mb * 1024 / self.conversations

    @property
    def passed(self) -> bool:
        return self.delta_mb <= TARGET_MB and self.in_progress == self.conversations


class Driver:
    """Feeds updates to a running bot, one at a time, as its receiver would (recorded in the
    inbox), and waits until each is handled."""

    def __init__(self, application: Application) -> None:
        self.runtime: Runtime = application.bot_data["runtime"]
        self.update_id = 0
        self._handled: dict[str, asyncio.Event] = {}
        self.runtime.inbox.listeners.append(self._on_handled)

    def _on_handled(self, row: Pending, _outbox_ids: list[int]) -> None:
        if (done := self._handled.pop(row.update_id, None)) is not None:
            done.set()

    async def say(self, chat: int, text: str) -> None:
        self.update_id += 1
        record = incoming(text_update(self.update_id, chat, text))
        assert record is not None
        done = self._handled[record.update_id] = asyncio.Event()
        await self.runtime.recorder.record([record])
        await done.wait()


async def seed(url: str, chats: list[int]) -> None:
    """Users and their forms in progress, as left by a bot that was then restarted."""
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    now = utcnow()
    users = [{"channel": "telegram", "channel_user_id": str(chat), "chat_id": str(chat),
              "display_name": "Ba", "language": "vi", "role": Role.PRODUCER, "reachable": True,
              "created_at": now} for chat in chats]  # fmt: skip
    forms = [{"channel": "telegram", "chat_id": str(chat), "flow": "register", "step": "product",
              "editing": False, "answers": MID_FORM, "version": 3, "updated_at": now}
             for chat in chats]  # fmt: skip
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(User), users)
            await connection.execute(insert(Conversation), forms)
    finally:
        await engine.dispose()


def _persistence_marks_mb(application: Application) -> float:
    """Memory held by PTB 22's sets of chat and user ids "to be updated in persistence": every
    update adds its ids and only a persistence run drains them, so without persistence (ours)
    they grow by one entry per distinct chat and user for the life of the process."""
    total = 0
    for name in (
        "_chat_ids_to_be_updated_in_persistence",
        "_user_ids_to_be_updated_in_persistence",
    ):
        marks: set[int] = getattr(application, name, set())
        total += sys.getsizeof(marks) + sum(sys.getsizeof(item) for item in marks)
    return total / 1024**2


async def _in_progress(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            found = await session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.flow == "register", Conversation.step == "group")
            )
            return int(found or 0)
    finally:
        await engine.dispose()


async def _child(url: str, api_url: str, conversations: int, warmup: int) -> dict[str, Any]:
    """The measured process: start the bot, warm it up, take both figures."""
    await asyncio.to_thread(upgrade, url)  # as `ocop-bot run` does first
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        telegram_api_url=api_url,
        database_url=url,
    )
    request = LocalBotApi()
    # Without Telegram's 30 messages/s (that would make this take 6 minutes); the pacing keeps
    # no state for private chats, so what is measured is the same.
    application = build_application(
        settings, request=request, pacing=Pacing(1_000_000, private_interval=0.0)
    )
    await start_application(application)
    driver = Driver(application)
    try:
        for chat in range(FIRST_WARMUP, FIRST_WARMUP + warmup):  # the same code paths,
            await driver.say(chat, PRODUCT)  # then nothing of theirs left in progress
            await driver.say(chat, "/huy")
        gc.collect()
        none, blocks = rss_mb(), sys.getallocatedblocks()
        start = time.perf_counter()
        for chat in range(FIRST_CHAT, FIRST_CHAT + conversations):
            await driver.say(chat, PRODUCT)
        seconds = time.perf_counter() - start
        gc.collect()
        busy, blocks = rss_mb(), sys.getallocatedblocks() - blocks
        marked = _persistence_marks_mb(application)
    finally:
        await stop_application(application)
    if request.sent < conversations:
        raise RuntimeError(f"the bot answered {request.sent} times, expected more")
    return {
        "none": none,
        "busy": busy,
        "seconds": seconds,
        "python_blocks": blocks,
        "ptb_marks_mb": marked,
        "in_progress": await _in_progress(url),
    }


def _size_mb(folder: str) -> float:
    return sum(file.stat().st_size for file in Path(folder).iterdir()) / 1024**2


async def idle_memory(conversations: int = 10_000, warmup: int = 300) -> MemoryResult:
    """Run the measured bot in a fresh interpreter and return its figures."""
    folder = tempfile.mkdtemp(prefix="ocop-bench-memory-")
    database = Path(folder) / "memory.db"
    url = f"sqlite+aiosqlite:///{database}"
    warm, measured = (
        range(FIRST_WARMUP, FIRST_WARMUP + warmup),
        range(FIRST_CHAT, FIRST_CHAT + conversations),
    )
    await seed(url, [*warm, *measured])
    emulator, base = await start_emulator()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.memory", "--child", url, f"{base}/bot",
            str(conversations), str(warmup), stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        out, _err = await child.communicate()
        if child.returncode:
            raise RuntimeError(f"the measured bot failed ({child.returncode})")
        figures = json.loads(out.decode().strip().splitlines()[-1])
        size = await asyncio.to_thread(_size_mb, folder)
    finally:
        emulator.terminate()
        await emulator.wait()
        await asyncio.to_thread(shutil.rmtree, folder, True)
    return MemoryResult(
        conversations=conversations,
        in_progress=figures["in_progress"],
        rss_none_mb=figures["none"],
        rss_busy_mb=figures["busy"],
        updates_per_second=conversations / figures["seconds"],
        python_blocks=figures["python_blocks"],
        ptb_marks_mb=figures["ptb_marks_mb"],
        database_mb=size,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--child", nargs=4, metavar=("URL", "API", "N", "WARMUP"))
    parser.add_argument("--conversations", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    if args.child:
        url, api, count, warmup = args.child
        print(json.dumps(asyncio.run(_child(url, api, int(count), int(warmup)))))
        return
    result = asyncio.run(idle_memory(args.conversations))
    print(json.dumps(asdict(result), indent=1))
    print(f"delta {result.delta_mb:.1f} MB, {result.per_conversation_kb:.2f} KB/conversation")


if __name__ == "__main__":
    main()
