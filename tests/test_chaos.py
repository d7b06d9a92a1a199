"""Nothing lost at the edges: producers register through `ocop-bot run` while it is SIGKILLed
(bench/chaos.py), by long polling and by webhook. The one copy allowed is of a reply Telegram
accepted while the killed process had not yet recorded it as sent (its outbox row holds the other
copy's message id): no Bot API call can tell such a send from a lost one."""

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
    # Every chat got the reference's messages, in order.
    assert result.wrong == {}, "\n".join(
        f"chat {chat}:\n  " + "\n  ".join(lines) for chat, lines in result.wrong.items()
    )
    # A chat has one reply on the wire at a time, so a kill leaves at most one copy per chat.
    assert result.most_copies <= result.kills
    assert result.registrations == {7_000_001 + n: 1 for n in range(PRODUCERS)}
    assert result.incomplete == []  # every answer as given
