"""The sandbox as a trainer starts it: `ocop-bot sandbox` (or `make run` without a token) serves
the web chat, and the real bot answers there, over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox.chats import safe_html
from tests.sandbox_harness import running

REPOSITORY = Path(__file__).resolve().parent.parent
# A bot reply takes well under a second idle; this only bounds a hung bot.
REPLY_DEADLINE = 60.0


def chat_events(client: httpx.Client, persona: str) -> Iterator[dict[str, Any]]:
    """The persona's chat, each time the sandbox pushes it (Server-Sent Events)."""
    with client.stream("GET", f"/api/chats/{persona}/events", timeout=REPLY_DEADLINE) as stream:
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "chat":
                yield json.loads(line.removeprefix("data: "))


def wait_for(
    client: httpx.Client, persona: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    for chat in chat_events(client, persona):
        if done(chat["messages"]):
            return list(chat["messages"])
    raise AssertionError("the event stream ended")


def bot_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("html") or m.get("text") or "" for m in messages if m["from"] == "bot"]


def test_ocop_bot_sandbox_serves_the_page_and_the_bots_reply(tmp_path: Path) -> None:
    with (
        running(tmp_path) as (address, _process),
        httpx.Client(base_url=address, timeout=REPLY_DEADLINE) as client,
    ):
        page = client.get("/")
        assert page.status_code == 200
        assert "Bản dùng thử" in page.text  # the sandbox banner
        assert client.get("/static/app.js").status_code == 200
        assert client.post("/api/chats/lan/text", json={"text": "/start"}).status_code == 200
        messages = wait_for(client, "lan", lambda m: bool(bot_texts(m)))
        assert messages[0] == {"id": 1, "from": "me", "text": "/start"}
        [welcome] = bot_texts(messages)
        assert "Chương trình OCOP" in welcome
        buttons = [b["text"] for row in messages[1]["buttons"] for b in row]
        assert "📝 Đăng ký sản phẩm mới" in buttons
    assert (tmp_path / "data" / "sandbox" / "ocop.db").exists()  # its own database


def test_the_zalo_view_shows_numbered_menus_as_plain_text(tmp_path: Path) -> None:
    with (
        running(tmp_path) as (address, _process),
        httpx.Client(base_url=address, timeout=REPLY_DEADLINE) as client,
    ):
        client.post("/api/chats/lan-zalo/text", json={"text": "menu"})
        messages = wait_for(client, "lan-zalo", lambda m: bool(bot_texts(m)))
        [menu] = bot_texts(messages)
        assert "1. 📝 Đăng ký sản phẩm mới" in menu
        assert "buttons" not in messages[-1]
        client.post("/api/chats/lan-zalo/text", json={"text": "1"})
        messages = wait_for(client, "lan-zalo", lambda m: len(bot_texts(m)) >= 2)
        assert "thông tin cá nhân" in bot_texts(messages)[-1]  # the notice comes first
        client.post("/api/chats/lan-zalo/text", json={"text": "Đồng ý"})
        messages = wait_for(client, "lan-zalo", lambda m: "xã/phường nào" in bot_texts(m)[-1])
        assert "xã/phường nào" in bot_texts(messages)[-1]


def test_reset_starts_from_an_empty_database(tmp_path: Path) -> None:
    with (
        running(tmp_path) as (address, _process),
        httpx.Client(base_url=address, timeout=REPLY_DEADLINE) as client,
    ):
        client.post("/api/chats/minh/text", json={"text": "/dangky"})
        wait_for(client, "minh", lambda m: bool(bot_texts(m)))
        assert client.post("/api/reset", timeout=REPLY_DEADLINE).status_code == 200
        assert client.get("/api/chats/minh").json()["messages"] == []
        # The conversation begun before the reset is gone: /hoso finds nothing.
        client.post("/api/chats/minh/text", json={"text": "/hoso"})
        messages = wait_for(client, "minh", lambda m: bool(bot_texts(m)))
        assert "chưa đăng ký sản phẩm nào" in bot_texts(messages)[0]


def test_make_run_without_a_token_starts_the_sandbox(tmp_path: Path) -> None:
    """What a newcomer types first, in the repository (the virtual environment exists)."""
    if (REPOSITORY / ".env").exists() and "BOT_TOKEN" in (REPOSITORY / ".env").read_text():
        pytest.skip("this checkout's .env sets a bot token: make run would serve the real bot")
    command = ["make", "-s", "-C", str(REPOSITORY), "run"]
    with running(tmp_path, (), command=command) as (address, _process):
        answer = httpx.get(address, timeout=REPLY_DEADLINE)
        assert answer.status_code == 200 and "Bản dùng thử" in answer.text
    log = (tmp_path / "sandbox.log").read_text()
    assert "@BotFather" in log  # and it says how to serve the real bot


def test_bot_html_keeps_only_telegrams_tags() -> None:
    text = (
        '<b>Mã hồ sơ</b> &lt;script&gt; <a href="https://t.me/x?start=1">liên kết</a> '
        '<a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)><script>alert(1)</script>'
    )
    shown = safe_html(text)
    assert "<b>Mã hồ sơ</b>" in shown and "&lt;script&gt;" in shown
    assert 'href="https://t.me/x?start=1"' in shown
    assert "javascript" not in shown and "<img" not in shown and "<script" not in shown


def test_the_personas_channels_are_the_bots() -> None:
    from bot.channels import telegram, zalo
    from bot.sandbox import personas

    assert (personas.TELEGRAM, personas.ZALO) == (telegram.CHANNEL, zalo.CHANNEL)


def test_the_sandbox_talks_only_to_its_emulators_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.emulator import TelegramEmulator
    from bot.emulator.zalo import ZaloEmulator
    from bot.sandbox.sandbox import sandbox_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:REAL\nZALO_BOT_TOKEN=456:REAL\n")
    monkeypatch.setenv("TELEGRAM_API_URL", "https://api.telegram.org/bot")
    monkeypatch.setenv("WEBHOOK_URL", "https://example.org/hook")
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///real.db")
    telegram, zalo = TelegramEmulator(port=8101), ZaloEmulator(port=8102)
    settings = sandbox_settings(tmp_path / "sandbox", telegram, zalo)
    assert settings.telegram_api_url == "http://127.0.0.1:8101/bot"
    assert settings.file_url == "http://127.0.0.1:8101/file/bot"
    assert settings.zalo_api_url == "http://127.0.0.1:8102/bot"
    assert (settings.telegram_bot_token, settings.zalo_bot_token) == (telegram.token, zalo.token)
    assert settings.webhook_url is None and settings.zalo_webhook_url is None
    assert settings.database_url.endswith(f"{tmp_path}/sandbox/ocop.db")
