"""How the Zalo channel is served: `ocop-bot run` with only a Zalo token (long polling), and
webhook mode, where updates pushed by Zalo are answered and a call without the secret is not."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.chaos import start_ocop_bot, stop_ocop_bot
from bot.app import build_runtime, build_services
from bot.channels.zalo_bot import ZaloBot
from bot.emulator.zalo import ZaloEmulator
from bot.settings import Settings
from models.db import create_sessionmaker
from models.inbox import InboxUpdate
from tests.sandbox_harness import running
from tests.zalo_harness import ZaloBotUnderTest, ZaloUser, zalo_emulator, zalo_settings

__all__ = ["zalo_emulator"]  # fixtures


def test_run_without_any_token_names_both_channels(tmp_path: Path) -> None:
    """It says which tokens would serve the real bot, and starts the sandbox meanwhile."""
    with running(tmp_path, ("run",)):  # no .env in tmp_path; no token in its environment
        pass
    err = (tmp_path / "sandbox.log").read_text()
    assert "TELEGRAM_BOT_TOKEN" in err and "ZALO_BOT_TOKEN" in err


async def test_ocop_bot_run_serves_zalo_alone(zalo_emulator: ZaloEmulator, tmp_path: Path) -> None:
    """Migrates a fresh database, long-polls Zalo, answers, stops on SIGTERM."""
    environment = {
        **os.environ,
        "ZALO_BOT_TOKEN": zalo_emulator.token,
        "ZALO_API_URL": zalo_emulator.api_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/data/ocop.db",
    }
    environment.pop("TELEGRAM_BOT_TOKEN", None)
    process = await start_ocop_bot(tmp_path, environment)
    try:
        zalo_emulator.send_text("u1", "/start")
        [welcome] = await zalo_emulator.wait_for_messages("u1", 1, timeout=60)
        assert "Chương trình OCOP" in welcome["text"]
        zalo_emulator.send_text("u1", "1")
        messages = await zalo_emulator.wait_for_messages("u1", 2, timeout=30)
        assert "thông tin cá nhân" in messages[1]["text"]  # the consent notice comes first
        zalo_emulator.send_text("u1", "Đồng ý")
        messages = await zalo_emulator.wait_for_messages("u1", 4, timeout=30)
        assert "xã/phường nào" in messages[3]["text"]
    finally:
        log = await stop_ocop_bot(process)
    assert process.returncode == 0, log
    assert zalo_emulator.token not in log
    assert not [name for name, _ in zalo_emulator.calls if name.lower().startswith("setwebhook")]


SECRET = "đúng-bí-mật-2026"  # non-ASCII on purpose: the comparison works on bytes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def webhook_settings(settings: Settings, zalo_emulator: ZaloEmulator) -> Settings:
    """Zalo calls an HTTPS URL; a TLS proxy (the emulator plays it) hands the call to the
    plain port the bot listens on."""
    port = free_port()
    zalo_emulator.tls_proxy["https://ocop.example"] = f"http://127.0.0.1:{port}"
    return zalo_settings(
        settings,
        zalo_emulator,
        zalo_webhook_url="https://ocop.example/zalo/webhook",
        zalo_webhook_secret=SECRET,
        zalo_webhook_listen="127.0.0.1",
        zalo_webhook_port=port,
    )


@pytest.fixture
async def webhook_bot(
    webhook_settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> AsyncIterator[ZaloBotUnderTest]:
    running = ZaloBotUnderTest(webhook_settings, engine, zalo_emulator)
    await running.start()
    yield running
    await running.stop()


async def test_a_conversation_over_the_webhook(
    webhook_bot: ZaloBotUnderTest, zalo_emulator: ZaloEmulator
) -> None:
    user = ZaloUser(zalo_emulator, webhook_bot.handled, "8300000000000000001")
    await user.say("/start")
    assert "1. 📝 Đăng ký sản phẩm mới" in user.text
    await user.say("1")
    assert "xã/phường nào" in user.text
    assert zalo_emulator.webhook is not None
    assert zalo_emulator.webhook["url"].endswith("/zalo/webhook")
    assert zalo_emulator.webhook["secret_token"] == SECRET
    # Pushed one at a time: the first was answered before the second went out.
    assert zalo_emulator.webhook_statuses[0] == 200
    assert not [name for name, _params in zalo_emulator.calls if name == "getUpdates"]


async def test_a_call_without_the_right_secret_is_refused(
    webhook_bot: ZaloBotUnderTest, zalo_emulator: ZaloEmulator
) -> None:
    user = ZaloUser(zalo_emulator, webhook_bot.handled, "8300000000000000002")
    await user.say("/start")  # the webhook is registered and answers
    before = len(zalo_emulator.sent)
    forged = {
        "event_name": "message.text.received",
        "message": {
            "message_id": "forged-1",
            "from": {"id": user.user_id, "display_name": "Kẻ giả", "is_bot": False},
            "chat": {"id": user.user_id, "chat_type": "PRIVATE"},
            "date": 1764385200000,
            "text": "/hoso",
        },
    }
    assert await zalo_emulator.post_to_webhook(forged, "sai-bí-mật-2026") == 403
    assert await zalo_emulator.post_to_webhook(forged, None) == 403
    assert await zalo_emulator.post_to_webhook(forged, SECRET[:-1]) == 403
    assert len(zalo_emulator.sent) == before  # nothing was handled
    # The same update with the right secret, wrapped the way API answers are, is accepted:
    # recorded when the call is answered, then handled and answered in turn.
    assert await zalo_emulator.post_to_webhook({"ok": True, "result": forged}, SECRET) == 200
    await webhook_bot.handled.wait("forged-1")
    assert "chưa đăng ký sản phẩm nào" in zalo_emulator.sent[-1]["text"]


def test_a_webhook_needs_a_secret_zalo_accepts(
    webhook_settings: Settings, engine: AsyncEngine
) -> None:
    services = build_services(webhook_settings)
    for secret in (None, "short"):
        unsafe = webhook_settings.model_copy(update={"zalo_webhook_secret": secret})
        with pytest.raises(ValueError, match="ZALO_WEBHOOK_SECRET"):
            ZaloBot(unsafe, engine, services)


async def test_the_webhook_answers_once_the_update_is_recorded_not_handled(
    webhook_settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> None:
    """Zalo waits for the webhook's answer only while the update is written down: the
    handling comes after, from the inbox, even when nothing is handling yet."""
    bot = ZaloBotUnderTest(webhook_settings, engine, zalo_emulator)
    runtime = build_runtime(webhook_settings, engine, bot.services)
    zalo = ZaloBot(webhook_settings, engine, bot.services, retry_delay=0.05)
    zalo.channel.recorder = runtime.recorder
    runtime.add_channel(zalo.channel, zalo)
    bot.handled.attach(runtime)
    await zalo.open()
    await zalo.start()  # the receiver alone: no inbox worker runs yet
    try:
        update = zalo_emulator.send_text("u-rec", "/start")  # pushed to the webhook
        assert await zalo_emulator.wait_until(lambda: bool(zalo_emulator.webhook_statuses), 10)
        assert zalo_emulator.webhook_statuses == [200]
        async with create_sessionmaker(engine, read_only=True)() as session:
            recorded = list(await session.scalars(select(InboxUpdate.update_id)))
        assert recorded == [update["message"]["message_id"]] and not zalo_emulator.sent
        await zalo.stop()
        await runtime.start()  # handled from the inbox, answered
        await bot.handled.wait(update["message"]["message_id"])
        assert "Chương trình OCOP" in zalo_emulator.texts_to("u-rec")[0]
    finally:
        await runtime.stop()
        await zalo.close()


async def test_zalo_wants_an_https_webhook(
    webhook_settings: Settings, engine: AsyncEngine, zalo_emulator: ZaloEmulator
) -> None:
    plain = webhook_settings.model_copy(
        update={"zalo_webhook_url": "http://ocop.example/zalo/webhook"}
    )
    bot = ZaloBotUnderTest(plain, engine, zalo_emulator)
    await bot.start()
    try:
        refused = lambda: any(f[0] == "setWebhook" for f in zalo_emulator.failures)  # noqa: E731
        assert await zalo_emulator.wait_until(refused, 10)
        [(_, code, _params), *_] = [f for f in zalo_emulator.failures if f[0] == "setWebhook"]
        assert code == 400 and zalo_emulator.webhook is None
    finally:
        await bot.stop()
