"""Start-up: `ocop-bot run` from process spawn to its first reply, against the Telegram emulator
(each run in a process of its own, with a fresh emulator and a fresh SQLite file, so migrations
are part of it), vs. the barest PTB application (bench/startup_bare.py) on the same emulator.

A "/start" from a user is waiting at the emulator before the bot is spawned; the clock stops when
the emulator has the bot's reply (GET /_emulator/wait). Median of 3 runs each, alternated;
target: ours <= 2x the bare application.

Also the sandbox (`ocop-bot sandbox`, what `make run` starts without a token): from spawn to the
address printed, against the issue's 10 s, beside `ocop-bot run`'s fresh start in the same round.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.transport import TOKEN, start_emulator

OCOP_BOT = Path(sys.executable).with_name("ocop-bot")
BARE = Path(__file__).with_name("startup_bare.py")
RUNS = 3


@dataclass(frozen=True)
class StartupResult:
    ours_seconds: float  # median, fresh database (migrations included)
    bare_seconds: float  # median
    restart_seconds: float  # median, ours on a database already migrated (for information)
    sandbox_seconds: float  # median, `ocop-bot sandbox` to its printed address (fresh database)
    ours_runs: tuple[float, ...]
    bare_runs: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return self.ours_seconds / self.bare_seconds

    @property
    def passed(self) -> bool:
        return self.ratio <= 2.0

    @property
    def sandbox_passed(self) -> bool:
        return self.sandbox_seconds <= 10.0


def _ocop_bot(command: str) -> list[str]:
    """The installed console script, as an operator runs it (the module when not installed)."""
    if OCOP_BOT.exists():
        return [str(OCOP_BOT), command]
    return [sys.executable, "-m", "bot.cli", command]


def _command(kind: str, api_url: str) -> list[str]:
    if kind == "bare":
        return [sys.executable, str(BARE), TOKEN, api_url]
    return _ocop_bot("run")


def _environment(api_url: str, database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "OCOP_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=api_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        PTB_TIMEDELTA="true",
    )
    return env


async def first_reply(kind: str) -> float:
    """Seconds from spawning the bot to the emulator holding its answer to a waiting /start.

    `kind`: "bare", "ours" (fresh database) or "restart" (ours, database migrated beforehand)."""
    emulator, base = await start_emulator()
    folder = Path(tempfile.mkdtemp(prefix="ocop-bench-startup-"))
    api_url = f"{base}/bot"
    env = _environment(api_url, folder / "ocop.db")
    bot: asyncio.subprocess.Process | None = None
    try:
        if kind == "restart":
            migrate = await asyncio.create_subprocess_exec(
                *_ocop_bot("migrate"), env=env, cwd=folder,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            if await migrate.wait():
                raise RuntimeError("ocop-bot migrate failed")
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            sent = await client.post("/_emulator/send_text", json={"user_id": 1, "text": "/start"})
            sent.raise_for_status()
            start = time.perf_counter()
            bot = await asyncio.create_subprocess_exec(
                *_command(kind, api_url), env=env, cwd=folder,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            answer = await client.get("/_emulator/wait", params={"chat_id": 1, "count": 1,
                                                                 "timeout": 60})  # fmt: skip
            seconds = time.perf_counter() - start
            answer.raise_for_status()
        return seconds
    finally:
        if bot is not None and bot.returncode is None:
            bot.terminate()
            await bot.wait()
        emulator.terminate()
        await emulator.wait()
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def sandbox_address() -> float:
    """Seconds from spawning `ocop-bot sandbox` to the address it prints (bot and emulators up)."""
    folder = Path(tempfile.mkdtemp(prefix="ocop-bench-sandbox-"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BOT_TOKEN")}
    start = time.perf_counter()
    sandbox = await asyncio.create_subprocess_exec(
        *_ocop_bot("sandbox"), "--port", "0", env=env, cwd=folder,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert sandbox.stdout is not None
        line = await asyncio.wait_for(sandbox.stdout.readline(), timeout=120)
        seconds = time.perf_counter() - start
        if b"http://" not in line:
            raise RuntimeError(f"ocop-bot sandbox printed no address: {line!r}")
        return seconds
    finally:
        if sandbox.returncode is None:
            sandbox.terminate()
            await sandbox.wait()
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def startup(runs: int = RUNS) -> StartupResult:
    """Median time to the first reply of each kind of start, over `runs` alternated rounds."""
    ours: list[float] = []
    bare: list[float] = []
    restart: list[float] = []
    sandbox: list[float] = []
    for _run in range(runs):  # alternated, so a busy moment hurts all alike
        bare.append(await first_reply("bare"))
        ours.append(await first_reply("ours"))
        restart.append(await first_reply("restart"))
        sandbox.append(await sandbox_address())
    return StartupResult(
        ours_seconds=statistics.median(ours),
        bare_seconds=statistics.median(bare),
        restart_seconds=statistics.median(restart),
        sandbox_seconds=statistics.median(sandbox),
        ours_runs=tuple(ours),
        bare_runs=tuple(bare),
    )


if __name__ == "__main__":
    result = asyncio.run(startup())
    print(result)
    print(f"ratio {result.ratio:.2f}  passed {result.passed}")
    print(f"sandbox {result.sandbox_seconds:.2f} s  passed {result.sandbox_passed}")
