"""Nothing lost at the edges: producers register through `ocop-bot run` while it is SIGKILLed
(bench/chaos.py), by long polling and by webhook. The one copy allowed is of a reply accepted by
Telegram in the instant before a kill, which no Bot API call can tell from one that was not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import chaos
from bot.emulator import TelegramEmulator

PRODUCERS = 20
KILLS = 5


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_producers_lose_nothing_while_the_bot_is_killed(
    tmp_path: Path, emulator: TelegramEmulator, mode: str
) -> None:
    result = await chaos(tmp_path, emulator, PRODUCERS, KILLS, mode)
    assert result.returncode == 0, result.log
    assert result.stopped_in < 10, f"SIGTERM took {result.stopped_in:.1f} s"
    assert result.kills >= KILLS
    assert result.wrong == {}  # every chat got the reference's messages, in order
    assert result.doubtful <= result.kills  # at most the reply on the wire at each kill
    assert result.registrations == {7_000_001 + n: 1 for n in range(PRODUCERS)}
    assert result.incomplete == []  # every answer as given
