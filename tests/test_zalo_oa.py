"""The Zalo Official Account channel end to end, over the OA + ZNS emulator: a producer follows
the OA and registers; tokens expire and are refreshed while people talk; forged webhook calls
are refused; reminders go as ordinary messages while the person's window is open and as ZNS
template messages to their phone (counted against the day's quota) once it has closed."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.channels.zalo_oa import to_event
from bot.emulator import TelegramEmulator
from bot.emulator.zalo_oa import ZaloOAEmulator
from bot.settings import Settings
from handlers.events import Document, EventKind, Notice, Reply
from handlers.notices import queue
from models.base import utcnow
from models.db import create_sessionmaker
from models.inbox import InboxUpdate
from models.outbox import OutboxMessage
from models.users import User
from models.zalo_oa import OAuthToken, zns_sent_on
from tests import factories
from tests.flows import stored_registrations
from tests.harness import BotUnderTest, Clock, Producer
from tests.zalo_harness import answer_by_numbers
from tests.zalo_oa_harness import (
    REMINDER_TEMPLATE,
    OABotUnderTest,
    OAUser,
    oa_bot,
    oa_clock,
    oa_emulator,
    oa_settings,
)

__all__ = ["oa_bot", "oa_clock", "oa_emulator"]  # fixtures

EXPIRY = dt.date(2026, 12, 29)  # 30 days after the harness clock's 29/11/2026


@pytest.mark.both_databases
async def test_a_producer_follows_the_oa_and_registers(
    oa_bot: OABotUnderTest, engine: AsyncEngine
) -> None:
    user = OAUser(oa_bot, "6100000000000000001")
    await user.follow()
    assert "Chương trình OCOP" in user.text
    [welcome] = user.replies
    titles = [button["title"] for button in welcome["buttons"]]
    assert any("Đăng ký sản phẩm mới" in title for title in titles)
    assert all(button["type"] == "oa.query.hide" for button in welcome["buttons"])
    await user.tap("Đăng ký sản phẩm mới")  # the button sends its number back
    assert "xã/phường nào" in user.text
    await user.tap("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in user.text
    await user.say("huy")  # two answers given: the bot asks before dropping them
    assert "có chắc muốn huỷ" in user.text
    await user.say("có")
    assert "Đã huỷ" in user.text
    await answer_by_numbers(user, product="Mắm ruốc Sa Huỳnh")  # typed numbers work too
    await user.choose("Gửi hồ sơ")
    assert "Mã hồ sơ" in user.text
    [registration] = await stored_registrations(engine)
    assert (registration.channel, registration.product_name) == ("zalo_oa", "Mắm ruốc Sa Huỳnh")
    assert registration.phone == "+84905123456"


@pytest.mark.both_databases
async def test_the_access_token_is_refreshed_mid_conversation(
    oa_bot: OABotUnderTest, oa_emulator: ZaloOAEmulator, oa_clock: Clock, engine: AsyncEngine
) -> None:
    """An access token lives 25 hours and a refresh token is good once: the bot refreshes
    before expiry, keeps the new pair encrypted in the database, and the talk goes on."""
    user = OAUser(oa_bot, "6100000000000000002")
    await user.say("dang ky")
    assert "Ông/Bà muốn đăng ký gì?" in user.text
    assert oa_emulator.refreshes == 1  # at start, from ZALO_OA_REFRESH_TOKEN
    first_refresh = next(iter(oa_emulator.used_refresh_tokens))
    oa_clock.now += dt.timedelta(hours=24, minutes=55)  # 5 minutes before the token expires
    await user.say("1")
    assert "xã/phường nào" in user.text
    assert oa_emulator.refreshes == 2 and len(oa_emulator.used_refresh_tokens) == 2
    assert not [f for f in oa_emulator.failures if f[1] in (-216, -14014)]
    async with create_sessionmaker(engine, read_only=True)() as session:
        [stored] = await session.scalars(select(OAuthToken))
    assert stored.version == 2
    assert oa_emulator.refresh_token.encode() not in stored.refresh_token  # ciphertext only
    assert first_refresh.encode() not in stored.refresh_token
    await oa_bot.stop()  # a restart uses the stored pair, not the spent one from the settings
    await oa_bot.start()
    await user.choose("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in user.text
    assert not [f for f in oa_emulator.failures if f[0] == "oauth"]


async def test_a_forged_webhook_call_is_refused(
    oa_bot: OABotUnderTest, oa_emulator: ZaloOAEmulator, engine: AsyncEngine
) -> None:
    user = OAUser(oa_bot, "6100000000000000003")
    await user.say("xin chao")
    before = len(oa_emulator.sent)
    event = oa_emulator.text_event(user.user_id, "/hoso", msg_id="forged-1")
    body = json.dumps(event, ensure_ascii=False)  # signed as Zalo signs it
    good = oa_emulator.sign(body, event["timestamp"])
    tampered = body.replace("/hoso", "/huy")
    assert await oa_emulator.post_event(body, None) == 403
    assert await oa_emulator.post_event(body, "mac=" + "0" * 64) == 403
    assert await oa_emulator.post_event(tampered, good) == 403  # signed, then changed
    wrong_secret = ZaloOAEmulator(oa_emulator.clock, oa_secret="not-the-oa-secret")
    assert await oa_emulator.post_event(body, wrong_secret.sign(body, event["timestamp"])) == 403
    async with create_sessionmaker(engine, read_only=True)() as session:
        recorded = list(await session.scalars(select(InboxUpdate.update_id)))
    assert "forged-1" not in recorded and len(oa_emulator.sent) == before
    assert await oa_emulator.post_event(body, good) == 200  # the genuine call is taken
    await oa_bot.handled.wait_answered("forged-1")
    assert "chưa đăng ký sản phẩm nào" in oa_emulator.sent[-1]["text"]


async def certified(bot: OABotUnderTest, engine: AsyncEngine, user_id: str, phone: str) -> OAUser:
    """A producer on the OA whose fish sauce's 4-star certificate expires on 29/12/2026, with
    the phone number of their producer record (linked to their Zalo account)."""
    user = OAUser(bot, user_id)
    await user.say("xin chao")
    async with create_sessionmaker(engine)() as session, session.begin():
        owner = await session.scalar(select(User).where(User.channel_user_id == user_id))
        assert owner is not None
        subject = await factories.subject(session, "HTX Nước mắm Sa Huỳnh")
        subject.owner_user_id, subject.phone = owner.id, phone
        item = await factories.product(session, subject, "Nước mắm cá cơm", "21478")
        factories.certificate(session, item, 4, EXPIRY - dt.timedelta(days=3 * 365 + 1))
    bot.emulator.zalo_phones[phone.removeprefix("+")] = user_id
    return user


async def test_a_reminder_inside_the_window_is_an_ordinary_message(
    oa_bot: OABotUnderTest, oa_emulator: ZaloOAEmulator, engine: AsyncEngine
) -> None:
    user = await certified(oa_bot, engine, "6100000000000000004", "+84905000004")
    await oa_bot.run_reminders()
    await oa_emulator.wait_until(lambda: any("⏰" in m["text"] for m in oa_emulator.sent))
    [reminder] = [m for m in oa_emulator.sent if "⏰" in m["text"]]
    rows = await oa_bot.sends(lambda rows: any(r.message_id == reminder["id"] for r in rows))
    [sent] = [r for r in rows if r.message_id == reminder["id"]]
    assert (sent.route, sent.status) == ("cs", "sent")
    assert reminder["user_id"] == user.user_id and "29/12/2026" in reminder["text"]
    assert any("Đăng ký đánh giá lại" in b["title"] for b in reminder["buttons"])
    assert not oa_emulator.zns
    user.replies = [reminder]
    await user.tap("Đăng ký đánh giá lại")  # answered right from the reminder
    assert "được điền sẵn" in user.text


@pytest.mark.both_databases
async def test_a_reminder_outside_the_window_goes_as_zns_and_counts_against_the_quota(
    settings: Settings, engine: AsyncEngine, oa_emulator: ZaloOAEmulator, oa_clock: Clock
) -> None:
    """Three days after their last message, a producer is reminded by ZNS at the phone
    number on file; with the day's quota of one spent, the next producer's reminder waits
    for tomorrow's sending hours."""
    limited = oa_settings(settings, oa_emulator, zalo_zns_daily_quota=1)
    bot = OABotUnderTest(limited, engine, oa_emulator, oa_clock)
    await bot.start()
    try:
        first = await certified(bot, engine, "6100000000000000005", "+84905000005")
        second = await certified(bot, engine, "6100000000000000006", "+84905000006")
        oa_clock.now += dt.timedelta(days=3)  # 10:00 in Vietnam, windows closed
        quota_before = oa_emulator.remaining_quota()
        await bot.run_reminders()
        rows = await bot.sends(
            lambda rows: {r.status for r in rows if r.route == "zns"} >= {"sent", "deferred"}
        )
        # Both reminders are due at once: whichever is sent first takes the one ZNS message.
        [zns] = oa_emulator.zns
        phones = {"84905000005": (first, second), "84905000006": (second, first)}
        assert zns["phone"] in phones  # the number on file, as 84…
        reminded, waiting_one = phones[zns["phone"]]
        assert zns["template_id"] == REMINDER_TEMPLATE
        assert zns["data"] == {
            "ten_san_pham": "Nước mắm cá cơm",
            "ngay_het_han": "29/12/2026",
            "so_ngay": "27",
        }
        assert oa_emulator.remaining_quota() == quota_before - 1
        assert not [m for m in oa_emulator.sent if "⏰" in m["text"]]  # no CS message tried
        [sent] = [r for r in rows if r.route == "zns" and r.status == "sent"]
        assert (sent.route, sent.chat_id) == ("zns", reminded.user_id)
        assert sent.phone_tail == zns["phone"][-3:]  # only the tail of the number is kept
        assert sent.message_id == zns["msg_id"]
        async with create_sessionmaker(engine, read_only=True)() as session:
            assert await zns_sent_on(session, dt.date(2026, 12, 2)) == 1

        async def waiting(session: AsyncSession) -> OutboxMessage | None:
            found = await session.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.chat_id == waiting_one.user_id,
                    OutboxMessage.key.like("reminder:%"),
                    OutboxMessage.status == "pending",
                )
            )
            return found

        held = await bot.until(waiting)  # back in the queue, for tomorrow 07:00 in Vietnam
        # 02/12 10:00 -> 03/12 07:00 in Vietnam: 21 hours on, whatever the outbox's clock says
        assert dt.timedelta(hours=20.9) < held.not_before - utcnow() <= dt.timedelta(hours=21)
        assert held.attempts == 0  # held back by the rules, not failed
    finally:
        await bot.stop()


async def test_outside_the_sending_hours_a_zns_waits_for_the_morning(
    oa_bot: OABotUnderTest, oa_emulator: ZaloOAEmulator, oa_clock: Clock, engine: AsyncEngine
) -> None:
    await certified(oa_bot, engine, "6100000000000000007", "+84905000007")
    oa_clock.now = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.UTC)  # 23:30 in Vietnam
    await oa_bot.run_reminders()
    await oa_bot.sends(lambda rows: any(r.route == "zns" for r in rows))
    assert not oa_emulator.zns and not oa_emulator.failures

    async def waiting(session: AsyncSession) -> OutboxMessage | None:
        return await session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.key.like("reminder:%"), OutboxMessage.status == "pending"
            )
        )

    held = await oa_bot.until(waiting)
    assert dt.timedelta(hours=7.4) < held.not_before - utcnow() <= dt.timedelta(hours=7.5)
    # The morning comes, on both clocks: the services' (hours) and the outbox's.
    oa_clock.now = dt.datetime(2026, 12, 2, 0, 0, 1, tzinfo=dt.UTC)  # 07:00 in Vietnam
    assert oa_bot.oa is not None
    oa_bot.oa.worker.clock = lambda: utcnow() + dt.timedelta(hours=7.5, seconds=1)
    await oa_bot.sends(lambda rows: any(r.route == "zns" and r.status == "sent" for r in rows))
    [zns] = oa_emulator.zns
    assert zns["phone"] == "84905000007"


async def test_a_producer_who_unfollows_is_no_longer_sent_to(
    oa_bot: OABotUnderTest, oa_emulator: ZaloOAEmulator, engine: AsyncEngine
) -> None:
    user = OAUser(oa_bot, "6100000000000000008")
    await user.say("xin chao")
    await oa_emulator.unfollow(user.user_id)
    assert oa_emulator.webhook_statuses[-1] == 200  # taken once written down
    async with create_sessionmaker(engine, read_only=True)() as session:
        found = await session.scalar(select(User).where(User.channel_user_id == user.user_id))
    assert found is not None and found.reachable is False
    await user.follow()  # back again: greeted, reachable
    assert "Chương trình OCOP" in user.text


async def _also_on_telegram(
    session: AsyncSession, user: OAUser, phone: str, telegram_id: str
) -> User:
    """The OA user's account, given `phone`, and a Telegram account with the same number."""
    on_oa = await session.scalar(select(User).where(User.channel_user_id == user.user_id))
    assert on_oa is not None
    on_oa.phone = phone
    session.add(
        User(channel="telegram", channel_user_id=telegram_id, chat_id=telegram_id, phone=phone)
    )
    await session.flush()
    return on_oa


async def test_outside_the_window_without_a_template_the_news_goes_to_their_other_channel(
    oa_bot: OABotUnderTest, oa_clock: Clock, engine: AsyncEngine
) -> None:
    """A review outcome (no ZNS template for it here) finds the producer on Telegram, where
    they registered with the same phone number; the OA records that it handed it over."""
    user = OAUser(oa_bot, "6100000000000000010")
    await user.say("xin chao")
    async with create_sessionmaker(engine)() as session, session.begin():
        on_oa = await _also_on_telegram(session, user, "+84905000010", "7010")
        oa_clock.now += dt.timedelta(days=3)
        notice = Notice(
            "zalo_oa",
            user.user_id,
            (Reply("Hồ sơ OCOP-2026-0001 (Nước mắm) đã được tiếp nhận."),),
            "review:test:accepted",
            on_oa.id,
            {"kind": "outcome", "values": {"code": "OCOP-2026-0001"}},
        )
        await queue(session, [notice], utcnow())  # the outbox runs on the delivery's clock
    assert oa_bot.oa is not None
    oa_bot.oa.wake()
    rows = await oa_bot.sends(lambda rows: any(r.status == "fallback" for r in rows))
    [handed] = [r for r in rows if r.status == "fallback"]
    assert "telegram" in (handed.error or "")
    async with create_sessionmaker(engine, read_only=True)() as session:
        [copy] = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "telegram")
        )
    assert copy.chat_id == "7010" and "OCOP-2026-0001" in copy.text
    assert copy.status == "pending"  # Telegram's worker sends it (not running in this test)


async def test_a_file_handed_over_to_their_other_channel_is_not_reported_lost(
    oa_bot: OABotUnderTest, oa_clock: Clock, engine: AsyncEngine
) -> None:
    """A file for a producer whose OA window has closed goes to their Telegram chat instead:
    it failed on the OA, but nobody may be told it could not be sent (a false "ask again")."""
    user = OAUser(oa_bot, "6100000000000000011")
    await user.say("xin chao")
    async with create_sessionmaker(engine)() as session, session.begin():
        on_oa = await _also_on_telegram(session, user, "+84905000011", "7011")
        oa_clock.now += dt.timedelta(days=3)
        document = Document("bang_ke.xlsx", b"PK")
        notice = Notice(
            "zalo_oa", user.user_id, (Reply("Bảng kê", document=document),), "task:99", on_oa.id
        )
        await queue(session, [notice], utcnow())

    async def settled(session: AsyncSession) -> list[OutboxMessage] | None:
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        done = any(r.channel == "zalo_oa" and r.status == "failed" for r in rows)
        return rows if done and not any(r.status == "sending" for r in rows) else None

    assert oa_bot.oa is not None
    oa_bot.oa.wake()
    rows = await oa_bot.until(settled)
    [copy] = [r for r in rows if r.channel == "telegram"]
    assert copy.chat_id == "7011" and copy.document_name == "bang_ke.xlsx"
    assert [r.key for r in rows if "undelivered" in r.key] == []


def test_oa_events_mean_what_they_say() -> None:
    base = {"app_id": "1", "timestamp": "1795921200000", "sender": {"id": "u9"}}
    image = to_event(
        {**base, "event_name": "user_send_image", "message": {"msg_id": "m1", "attachments": []}}
    )
    assert image is not None and image.kind is EventKind.PHOTO and image.update_id == "m1"
    command = to_event({**base, "event_name": "user_send_text", "message": {"text": "/hoso"}})
    assert command is not None and command.command == "hoso"
    follow = to_event({**base, "event_name": "follow", "follower": {"id": "u9"}})
    assert follow is not None and follow.command == "start" and follow.chat_id == "u9"
    echo = to_event({**base, "event_name": "oa_send_text", "message": {"text": "hi"}})
    assert echo is None  # the OA's own messages come back as events too


async def test_one_process_serves_telegram_and_the_official_account(
    settings: Settings,
    engine: AsyncEngine,
    emulator: TelegramEmulator,
    oa_emulator: ZaloOAEmulator,
) -> None:
    """`ocop-bot run` with a Telegram token and the OA settings: both channels answer."""
    both = BotUnderTest(oa_settings(settings, oa_emulator), engine, emulator)
    await both.start()
    try:
        on_telegram = Producer(both, user_id=7020)
        await on_telegram.say("/start")
        assert "Chương trình OCOP" in on_telegram.text
        event = await oa_emulator.follow("6100000000000000020")
        assert oa_emulator.webhook_statuses[-1] == 200
        update_id = f"follow:6100000000000000020:{event['timestamp']}"
        await both.tracker.wait_answered(update_id)
        assert "Chương trình OCOP" in oa_emulator.texts_to("6100000000000000020")[0]
    finally:
        await both.stop()
