"""Conversation throughput: producers registering at once, against two baselines built the usual
way, all fed to a real PTB Application through the same in-process transport.

- ours: the real bot (`bot.app.build_application`), every answer committed before the reply;
- peer: a ConversationHandler with as many steps, answers in user_data, PicklePersistence;
- bare: one handler that echoes the text (PTB's own dispatch cost).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)

from bench.transport import (
    BOT_USER,
    TOKEN,
    Inbox,
    LocalTransport,
    start_application,
    stop_application,
)
from bot.app import build_application
from bot.fairness import SenderLimits
from bot.migrate import upgrade
from bot.runtime import settle_process
from bot.settings import Settings
from models.outbox import Pacing

_updates = itertools.count(1)

# The registration as a producer answers it: ("tap", label) presses a button of the last
# question, ("say", text) types. {i} is the producer's number. 15 updates, like the peer's.
SCRIPT: tuple[tuple[str, str], ...] = (
    ("say", "/dangky"),
    ("tap", "Đồng ý"),  # the personal-data notice
    ("tap", "Sản phẩm mới"),
    ("tap", "Sa Huỳnh"),
    ("say", "Nước mắm số {i}"),
    ("tap", "Thực phẩm"),
    ("tap", "Hợp tác xã"),
    ("say", "HTX Nước mắm {i}"),
    ("say", "Nguyễn Văn {i}"),
    ("say", "Thôn {i}, phường Sa Huỳnh"),
    ("say", "Bỏ qua"),
    ("say", "0905 {a:03d} {b:03d}"),
    ("tap", "4 sao"),
    ("tap", "Có"),
    ("tap", "Gửi hồ sơ"),
)


@dataclass(frozen=True)
class Run:
    name: str
    producers: int
    updates: int
    seconds: float
    latencies: list[float]
    # CPU seconds of the process's one thread over the same span: unlike `seconds`, barely
    # moved by whatever else the machine runs (bench/README.md, "CPU per update").
    cpu: float = 0.0

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_per_update(self) -> float:
        """Microseconds of CPU per update."""
        return self.cpu / self.updates * 1e6

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def _message(user: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": next(_updates),
        "date": int(time.time()),
        "chat": {"id": user, "type": "private", "first_name": "P"},
        "from": {"id": user, "is_bot": False, "first_name": "P", "language_code": "vi"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": next(_updates), "message": message}


def _press(user: int, markup: dict[str, Any], label: str) -> dict[str, Any]:
    data = next(
        button["callback_data"]
        for row in markup.get("inline_keyboard", [])
        for button in row
        if label in button["text"]
    )
    return {
        "update_id": next(_updates),
        "callback_query": {
            "id": str(next(_updates)),
            "from": {"id": user, "is_bot": False, "first_name": "P"},
            "chat_instance": str(user),
            "data": data,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": user, "type": "private"},
                "from": BOT_USER,
                "text": "?",
            },
        },
    }


def _offers(inbox: Inbox, label: str) -> bool:
    return any(label in m.labels for m in inbox.messages[-3:])


def _more_than(inbox: Inbox, count: int) -> bool:
    return len(inbox.messages) > count


async def _producer(
    application: Application,
    transport: LocalTransport,
    user: int,
    script: tuple[tuple[str, str], ...],
    latencies: list[float],
    think: Callable[[], float] | None,
) -> None:
    inbox = transport.inboxes[user]
    number = user % 1_000_000
    for action, value in script:
        if think is not None:  # a person reads the question before answering
            await asyncio.sleep(think())
        seen = len(inbox.messages)
        if action == "tap":
            async with inbox.changed:  # the question with that button must have arrived
                await inbox.changed.wait_for(partial(_offers, inbox, value))
            markup = next(m.markup for m in reversed(inbox.messages) if value in m.labels)
            assert markup is not None
            raw = _press(user, markup, value)
            seen = len(inbox.messages)
        else:
            raw = _message(user, value.format(i=number, a=number // 1000, b=number % 1000))
        sent = time.perf_counter()
        transport.feed(raw)  # fetched by the bot's next getUpdates
        async with inbox.changed:
            await inbox.changed.wait_for(partial(_more_than, inbox, seen))
        latencies.append(inbox.messages[seen].at - sent)


async def drive(
    application: Application,
    transport: LocalTransport,
    producers: int,
    script: tuple[tuple[str, str], ...],
    name: str,
    rate: float | None = None,
    started_hook: Callable[[], None] = lambda: None,
) -> Run:
    """All producers at once. Without `rate`, each answers the moment the reply arrives (a
    saturated bot: throughput). With `rate`, each thinks a random while (exponential, the same
    seeded sequence for every bot) so that together they offer about `rate` updates per second:
    the latency a producer sees under that load.

    Every bot gets its updates as deployed, by getUpdates from the transport: ours with its own
    receiver (it records them in the inbox first), the baselines with PTB's Updater, as
    `run_polling` runs it."""
    latencies: list[float] = []
    think = None
    if rate is not None:
        rng = random.Random(2026)
        think = partial(rng.expovariate, rate / producers)
    await start_application(application)  # with post_init (only ours has one)
    updater = application.updater  # the baselines'; ours has its own receiver
    if updater is not None:
        await updater.start_polling(poll_interval=0)
    started_hook()
    started, cpu = time.perf_counter(), time.thread_time()
    await asyncio.gather(
        *(
            _producer(application, transport, 1_000_000 + p, script, latencies, think)
            for p in range(producers)
        )
    )
    seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
    if updater is not None:
        await updater.stop()
    await stop_application(application)
    return Run(name, producers, len(latencies), seconds, latencies, cpu)


async def ours(producers: int, database_url: str | None = None, rate: float | None = None) -> Run:
    folder = tempfile.mkdtemp(prefix="ocop-conv-")
    url = database_url or f"sqlite+aiosqlite:///{folder}/ocop.db"
    await asyncio.to_thread(upgrade, url)
    transport = LocalTransport()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        database_url=url,
    )
    # Telegram's limits off (the baselines have none, and this measures the bot); updates come
    # by getUpdates and go through the inbox, replies through the outbox.
    application = build_application(
        settings,
        request=transport,
        pacing=Pacing(1_000_000, private_interval=0.0),
        limits=SenderLimits(1_000_000, 1_000_000),
    )
    # Started as `ocop-bot run` starts it (`bot.app.serve`): the process settled after
    # start-up; the collector's defaults back afterwards, for the scenarios that follow.
    defaults = gc.get_threshold()
    try:
        return await drive(application, transport, producers, SCRIPT, "ours", rate, settle_process)
    finally:
        gc.unfreeze()
        gc.set_threshold(*defaults)


def _text_script() -> tuple[tuple[str, str], ...]:
    return tuple(("say", "/start" if n == 0 else f"trả lời {n}") for n in range(len(SCRIPT)))


async def peer(producers: int, rate: float | None = None) -> Run:
    """The way most PTB bots are written: a ConversationHandler, state in user_data,
    PicklePersistence flushing every 60 s."""
    steps = len(SCRIPT) - 1
    transport = LocalTransport()
    folder = Path(tempfile.mkdtemp(prefix="ocop-peer-"))

    def step(state: int) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, int]]:
        async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
            assert update.effective_message is not None and context.user_data is not None
            context.user_data[f"answer{state}"] = update.effective_message.text
            await update.effective_message.reply_text(f"Câu {state + 2}")
            return state + 1 if state + 1 < steps else ConversationHandler.END

        return answer

    async def begin(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> int:
        assert update.effective_message is not None
        await update.effective_message.reply_text("Câu 1")
        return 0

    conversation = ConversationHandler(
        entry_points=[CommandHandler("start", begin)],
        states={
            state: [MessageHandler(filters.TEXT & ~filters.COMMAND, step(state))]
            for state in range(steps)
        },
        fallbacks=[],
        name="registration",
        persistent=True,
    )
    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .request(transport)
        .get_updates_request(transport)
        .persistence(PicklePersistence(folder / "state.pickle", update_interval=60))
        .build()
    )
    application.add_handler(conversation)
    return await drive(application, transport, producers, _text_script(), "peer", rate)


async def bare(producers: int, rate: float | None = None) -> Run:
    transport = LocalTransport()
    application = (
        ApplicationBuilder().token(TOKEN).request(transport).get_updates_request(transport).build()
    )

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "")

    application.add_handler(MessageHandler(filters.TEXT, echo))
    return await drive(application, transport, producers, _text_script(), "bare", rate)


def summary(run: Run) -> str:
    return (
        f"{run.name}: {run.per_second:.0f} updates/s, p50 {run.percentile(0.5):.1f} ms, "
        f"p99 {run.percentile(0.99):.1f} ms, {run.cpu_per_update:.0f} µs CPU per update "
        f"({run.updates} updates, {run.producers} producers)"
    )


if __name__ == "__main__":
    import os

    os.environ.setdefault("PTB_TIMEDELTA", "true")
    for runner in (bare, peer, ours):
        print(summary(asyncio.run(runner(200))), flush=True)
