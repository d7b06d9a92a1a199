"""`ocop-bot check` as an operator runs it before starting the bot: each problem one line,
and a non-zero exit code."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot

from bot.cli import main
from bot.emulator import TelegramEmulator
from bot.migrate import upgrade
from bot.settings import Settings
from models.db import create_engine, create_sessionmaker
from tests.harness import BotUnderTest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: TelegramEmulator) -> Path:
    """A folder with no .env, the emulator's token and a SQLite database there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", emulator.token)
    monkeypatch.setenv("TELEGRAM_API_URL", emulator.api_url)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/ocop.db")
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET", "ZALO_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


async def _check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = await asyncio.to_thread(main, ["check"])
    return code, capsys.readouterr().out.splitlines()


def _failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


async def test_a_healthy_setup_passes_and_says_what_it_would_serve(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{operator}/ocop.db")
    code, lines = await _check(capsys)
    assert code == 0, lines
    assert _failures(lines) == []
    assert "ok    Telegram token: @ocop_test_bot" in lines
    assert any("would serve: Telegram @ocop_test_bot by long polling" in line for line in lines)


async def test_a_wrong_token_is_one_clear_line(
    operator: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{operator}/ocop.db")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:WRONG")
    code, lines = await _check(capsys)
    assert code == 1
    assert _failures(lines) == [
        "FAIL  Telegram: the bot token was refused: check TELEGRAM_BOT_TOKEN (@BotFather)"
    ]


async def test_an_unreachable_database_is_one_clear_line(
    operator: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://ocop:hemmelig@127.0.0.1:1/ocop")
    code, lines = await _check(capsys)
    assert code == 1
    [failure] = _failures(lines)
    assert failure.startswith("FAIL  database: cannot connect to postgresql+asyncpg://ocop:***@")
    assert "hemmelig" not in "\n".join(lines)  # the password is never printed


async def test_pending_migrations_are_one_clear_line(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{operator}/ocop.db", "0002")
    code, lines = await _check(capsys)
    assert code == 1
    [failure] = _failures(lines)
    assert "migrations pending (at 0002" in failure
    assert failure.endswith("run `ocop-bot migrate`")


async def test_a_webhook_registered_elsewhere_is_reported(
    operator: Path,
    monkeypatch: pytest.MonkeyPatch,
    emulator: TelegramEmulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{operator}/ocop.db")
    async with Bot(emulator.token, base_url=emulator.api_url) as other:  # an old deployment
        await other.set_webhook("http://127.0.0.1:9/old-hook")
    monkeypatch.setenv("WEBHOOK_URL", "https://ocop.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", "s" * 40)
    code, lines = await _check(capsys)
    assert code == 1
    [failure] = _failures(lines)
    assert "posts updates to http://127.0.0.1:9/old-hook, not to WEBHOOK_URL" in failure


async def test_a_short_webhook_secret_is_refused(
    operator: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://ocop.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", "short-secret")
    code, lines = await _check(capsys)
    assert code == 1
    assert any("WEBHOOK_SECRET must be 32 to 256 characters" in line for line in _failures(lines))
    # and `run` refuses to start with it, saying why
    assert await asyncio.to_thread(main, ["run"]) == 2
    assert "WEBHOOK_SECRET must be 32 to 256 characters" in capsys.readouterr().err


async def test_healthz_answers_200_while_the_database_answers_and_503_when_not(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    port = _free_port()
    webhook = settings.model_copy(
        update={
            "webhook_url": f"http://127.0.0.1:{port}/telegram/hook",
            "webhook_port": port,
            "webhook_secret": "h" * 32,
        }
    )
    bot = BotUnderTest(webhook, engine, emulator)
    await bot.start()
    unreachable = create_engine("postgresql+asyncpg://ocop@127.0.0.1:1/ocop")
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200
            # The database stops answering (as if its server went away).
            bot.runtime.recorder.sessionmaker = create_sessionmaker(unreachable)
            async with client.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 503
                assert "database" in await health.text()
    finally:
        await bot.stop()
        await unreachable.dispose()
