"""Attack on "nothing lost at the edges" (issue 10) over the Zalo Bot API emulator: Zalo's
getUpdates hands an update out once, so what the bot took and could not record is its own."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy.engine import make_url

from bot.emulator.zalo import ZaloEmulator
from handlers.i18n import _, in_language
from tests.test_attack_edges import _hold_until
from tests.test_edges import _busy_recording_text
from tests.test_zalo_serving import webhook_bot, webhook_settings
from tests.zalo_harness import ZaloBotUnderTest, ZaloUser, zalo_bot, zalo_emulator

__all__ = ["webhook_bot", "webhook_settings", "zalo_bot", "zalo_emulator"]  # fixtures


async def test_a_zalo_message_the_bot_could_not_record_before_a_restart_is_not_lost(
    zalo_bot: ZaloBotUnderTest, zalo_emulator: ZaloEmulator, database_url: str
) -> None:
    """Another program holds SQLite's lock; a producer writes on Zalo and is told the system
    is busy and their message will be handled, no need to send it again. The operator
    restarts the bot before the lock goes: Zalo will not hand the message out again, so the
    bot takes its promise back and asks for the message again. (It broke: the message was
    dropped at the stop and the promise left standing.)"""
    path = make_url(database_url).database
    assert path is not None
    user = ZaloUser(zalo_emulator, zalo_bot.handled, "7101")
    await user.say("xin chao")
    before = len(zalo_emulator.texts_to("7101"))
    loop = asyncio.get_running_loop()
    locked, release = threading.Event(), threading.Event()
    holder = loop.run_in_executor(None, _hold_until, path, locked, release)
    try:
        assert await asyncio.to_thread(locked.wait, 30)
        update = zalo_emulator.send_text("7101", "dangky")
        # The bot could not record it: it says so (the recording's busy notice), once.
        assert await zalo_emulator.wait_until(
            lambda: len(zalo_emulator.texts_to("7101")) > before, timeout=30
        )
        with in_language("vi"):
            assert zalo_emulator.texts_to("7101")[before:] == [_busy_recording_text()]
        await zalo_bot.stop()
    finally:
        release.set()
        await holder
    with in_language("vi"):
        assert zalo_emulator.texts_to("7101")[before:] == [_busy_recording_text(), _again()]
    await zalo_bot.start()
    assert (await user.say("dangky")) != []  # sent again, and answered
    assert str(update["message"]["message_id"]) not in zalo_bot.handled.counts


def _again() -> str:
    """What bot/channels/zalo.py says when it stops holding a message it could not record."""
    return _(
        "The system is busy and may not have taken your last message. If it gets no "
        "answer within a minute, please send it again."
    )


async def test_a_zalo_webhook_call_the_bot_could_not_record_promises_nothing_false(
    webhook_bot: ZaloBotUnderTest, zalo_emulator: ZaloEmulator, database_url: str
) -> None:
    """The same over the webhook: Zalo posts each update once (as the emulator does, and as
    nothing in Zalo's published pages promises otherwise), so a call answered 503 while the
    database is locked is gone. The bot must not say it will handle it."""
    path = make_url(database_url).database
    assert path is not None
    user = ZaloUser(zalo_emulator, webhook_bot.handled, "7201")
    await user.say("xin chao")
    before = len(zalo_emulator.texts_to("7201"))
    loop = asyncio.get_running_loop()
    locked, release = threading.Event(), threading.Event()
    holder = loop.run_in_executor(None, _hold_until, path, locked, release)
    try:
        assert await asyncio.to_thread(locked.wait, 30)
        update = zalo_emulator.send_text("7201", "dangky")
        statuses = len(zalo_emulator.webhook_statuses)
        assert await zalo_emulator.wait_until(
            lambda: len(zalo_emulator.webhook_statuses) > statuses, timeout=30
        )
        assert zalo_emulator.webhook_statuses[-1] == 503  # not recorded, and not posted again
        assert await zalo_emulator.wait_until(
            lambda: len(zalo_emulator.texts_to("7201")) > before, timeout=30
        )
    finally:
        release.set()
        await holder
    await webhook_bot.drain()
    with in_language("vi"):
        assert zalo_emulator.texts_to("7201")[before:] == [_again()]
    assert str(update["message"]["message_id"]) not in webhook_bot.handled.counts
