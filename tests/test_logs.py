"""What the operator reads in the log of `ocop-bot run`: one line saying what is served, no
routine line every minute, and with LOG_FORMAT=json one JSON object a line."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from bench.chaos import start_ocop_bot, stop_ocop_bot
from bot.emulator import TelegramEmulator


async def test_json_log_of_a_start_has_one_line_saying_what_is_served(
    emulator: TelegramEmulator, tmp_path: Path
) -> None:
    environment = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.api_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/data/ocop.db",
        "LOG_FORMAT": "json",
        "OCOP_BACKUP_TIME": "00:00",  # due at once: its line shows the jobs have all run
    }
    process = await start_ocop_bot(tmp_path, environment)
    try:
        emulator.send_text(4101, "/start")
        await emulator.wait_for_messages(4101, 1, timeout=60)
        async with asyncio.timeout(60):
            while not list((tmp_path / "data" / "backups").glob("ocop-daily-*.sqlite")):
                await emulator.wait_idle(timeout=60, quiet=0.2)
    finally:
        output = await stop_ocop_bot(process)
    assert process.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    served = [line for line in lines if line["message"].startswith("serving ")]
    assert [line["level"] for line in served] == ["INFO"]
    assert "Telegram @ocop_test_bot by long polling" in served[0]["message"]
    routine = [line for line in lines if line["logger"].startswith(("apscheduler", "telegram"))]
    assert routine == []  # the scheduler's line per job per minute is DEBUG
    assert emulator.token not in output
