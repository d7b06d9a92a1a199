"""Overload: updates offered far above what Telegram lets the bot answer, and a SIGKILL halfway.

`ocop-bot run` (SQLite) polls the emulator in a process of its own, which holds the bot to
Telegram's limits (30 messages/s, one a second per chat, 429 beyond). The bench offers RATE
updates a second, from enough people that none of them exceeds the per-sender limit, for
SECONDS; halfway the bot is SIGKILLed and started again. Measured: the bot's resident memory
(sampled every second), the rate its replies leave at (against the limit), the 429s, and
afterwards what became of every update offered: each must be recorded and handled, with its one
reply in the outbox (sent or still waiting its turn at 30 a second), none lost, none sent twice.

Run alone: `.venv/bin/python -m bench.overload` (BENCH_OVERLOAD_SECONDS, default 60; the issue's
figure is 300).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.transport import TOKEN, start_emulator

OCOP_BOT = Path(sys.executable).with_name("ocop-bot")
RATE = 200.0
LIMIT = 30.0
PEOPLE = 6000  # each sends once every PEOPLE / RATE = 30 s: far under the per-sender limit
WARM_UP = 10.0  # seconds before the reply rate is measured (the backlog builds up)


@dataclass
class Overload:
    seconds: float
    offered: int
    peak_rss_mb: float
    reply_rate: float  # replies a second while the backlog existed
    throttled: int
    unhandled: int  # offered updates neither handled nor waiting in the inbox at the end
    missing_replies: int  # handled updates without their reply in the outbox
    duplicates: int  # replies sent more than once

    @property
    def fraction(self) -> float:
        return self.reply_rate / LIMIT


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _start_bot(folder: Path, api_url: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/ocop.db",
        "OCOP_ADMINS": "",
    }
    return await asyncio.create_subprocess_exec(
        str(OCOP_BOT), "run", env=env, cwd=folder,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def _outcome(database: Path) -> tuple[int, int]:
    """(updates waiting in the inbox, replies written to the outbox)."""
    with sqlite3.connect(database) as connection:
        waiting = connection.execute("SELECT count(*) FROM inbox WHERE status='pending'")
        replies = connection.execute("SELECT count(*) FROM outbox WHERE reply")
        return int(waiting.fetchone()[0]), int(replies.fetchone()[0])


async def overload(seconds: float | None = None) -> Overload:
    seconds = seconds or float(os.environ.get("BENCH_OVERLOAD_SECONDS", "60"))
    emulator, base = await start_emulator({"overall_per_second": LIMIT, "per_chat_interval": 1.0})
    folder = Path(tempfile.mkdtemp(prefix="ocop-bench-overload-"))
    holder = {"bot": await _start_bot(folder, f"{base}/bot")}
    peak, offered, samples = 0.0, 0, []
    per_person: Counter[int] = Counter()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            started = time.monotonic()

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, _rss_mb(holder["bot"].pid))
                    stats = (await client.get("/_emulator/stats")).json()["result"]
                    samples.append((time.monotonic() - started, stats["sent"]))
                    await asyncio.sleep(1.0)

            async def kill_halfway() -> None:
                await asyncio.sleep(seconds / 2)
                holder["bot"].send_signal(signal.SIGKILL)
                await holder["bot"].wait()
                holder["bot"] = await _start_bot(folder, f"{base}/bot")

            sampler = asyncio.create_task(sample())
            killer = asyncio.create_task(kill_halfway())
            while (elapsed := time.monotonic() - started) < seconds:
                due = int(elapsed * RATE)
                while offered < due:  # at the offered rate, whatever the bot does
                    person = 1 + offered % PEOPLE
                    per_person[person] += 1
                    await client.post(
                        "/_emulator/send_text", json={"user_id": person, "text": "xin chào"}
                    )
                    offered += 1
                await asyncio.sleep(0.005)
            await killer
            sampler.cancel()
            stats = (await client.get("/_emulator/stats")).json()["result"]
            # Let what was offered be recorded and handled (replies keep leaving at 30/s).
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                waiting, replies = await asyncio.to_thread(_outcome, folder / "ocop.db")
                if waiting == 0 and replies >= offered:
                    break
                await asyncio.sleep(1.0)
            sent = (await client.get("/_emulator/messages")).json()["result"]
    finally:
        bot = holder["bot"]
        if bot.returncode is None:
            bot.terminate()
            await bot.wait()
        emulator.terminate()
        await emulator.wait()
    got = Counter(int(entry["chat_id"]) for entry in sent)
    duplicates = sum(max(0, count - per_person[chat]) for chat, count in got.items())
    in_backlog = [(t, n) for t, n in samples if t >= WARM_UP]
    rate = (
        (in_backlog[-1][1] - in_backlog[0][1]) / (in_backlog[-1][0] - in_backlog[0][0])
        if len(in_backlog) > 1
        else 0.0
    )
    # The restart itself is in the window: the rate includes its pause.
    return Overload(
        seconds,
        offered,
        peak,
        rate,
        int(stats["throttled"]),
        unhandled=waiting,
        missing_replies=max(0, offered - replies),
        duplicates=duplicates,
    )


def summary(result: Overload) -> str:
    return (
        f"overload {result.offered} updates in {result.seconds:.0f} s ({RATE:.0f}/s), SIGKILL "
        f"halfway: peak RSS {result.peak_rss_mb:.0f} MB, replies {result.reply_rate:.1f}/s "
        f"({result.fraction:.2f} of {LIMIT:.0f}), {result.throttled} × 429, "
        f"{result.unhandled} unhandled, {result.missing_replies} without reply, "
        f"{result.duplicates} sent twice"
    )


if __name__ == "__main__":
    print(summary(asyncio.run(overload())), flush=True)
