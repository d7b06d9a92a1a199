"""Nothing lost at the edges (issue 10): what a producer notices when the Bot API fails, when
another process holds the database, when someone floods the bot, and when the bot stops
between saving an answer and sending the reply."""

from __future__ import annotations

import asyncio
import math
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.inbox as inbox_worker
from bot.delivery import IDLE_POLL, backoff
from bot.emulator import Faults, Limits, TelegramEmulator
from bot.inbox import _busy_text, _failed_text, _flood_text
from bot.settings import Settings
from handlers.i18n import _, in_language
from models.base import utcnow
from models.db import BUSY_SECONDS, create_sessionmaker
from models.inbox import InboxStatus, InboxUpdate, Incoming, Pending, pending_of, record
from models.outbox import OutboxMessage, Pacing
from models.registrations import Registration
from models.users import User
from tests.flows import answer_new_product
from tests.harness import JSON, BotUnderTest, Producer

MakeBot = Callable[..., Awaitable[BotUnderTest]]

RECEIPT = re.compile(r"OCOP-\d{4}-\d{4}")
NEXT_AFTER_NAME = "Sản phẩm thuộc nhóm nào?"  # the question after the product name


class Person(Producer):
    """A producer whose actions wait for the bot until a deadline the test derived from its
    work (the harness's own wait is fixed), and who notes how long each answer took: from the
    moment the update was there to fetch until Telegram accepted the last reply to it."""

    def __init__(self, bot: BotUnderTest, user_id: int, *, until: float) -> None:
        super().__init__(bot, user_id)
        self.until = until  # loop time
        self.latencies: list[float] = []

    def patience(self) -> float:
        return max(0.0, self.until - asyncio.get_running_loop().time())

    async def _answered(self, update: JSON) -> list[JSON]:
        asked = time.monotonic()
        before = len(self.emulator.messages_to(self.user_id))
        await self.bot.tracker.wait_answered(str(update["update_id"]), timeout=self.patience())
        self.replies = self.emulator.messages_to(self.user_id)[before:]
        if self.replies:
            accepted = self.emulator.delivery_times(self.user_id)
            self.latencies.append(accepted[before + len(self.replies) - 1] - asked)
        return self.replies


@pytest.fixture
async def make_bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> AsyncIterator[MakeBot]:
    """Start the bot with some settings changed and the given delivery pacing (by default
    Telegram's own: 30 a second, a second apart per chat, as `Pacing` says)."""
    started: list[BotUnderTest] = []

    async def make(pacing: Pacing | None = None, **changes: Any) -> BotUnderTest:
        running = BotUnderTest(settings.model_copy(update=changes), engine, emulator)
        running.pacing = pacing or Pacing(running.settings.ocop_delivery_rate)
        started.append(running)
        await running.start()
        return running

    yield make
    for running in started:
        await running.stop()


def _texts(emulator: TelegramEmulator, chat_id: int) -> list[str]:
    """What the bot said in a chat, in order, receipt codes blanked (they number arrivals)."""
    return [RECEIPT.sub("OCOP-#", text) for text in emulator.texts_to(chat_id)]


async def _registrations_by_user(engine: AsyncEngine) -> dict[int, list[Registration]]:
    async with create_sessionmaker(engine, read_only=True)() as session:
        rows = await session.execute(
            select(User.channel_user_id, Registration)
            .join(User, User.id == Registration.submitted_by_user_id)
            .order_by(Registration.id)
        )
        found: dict[int, list[Registration]] = {}
        for user_id, registration in rows:
            found.setdefault(int(user_id), []).append(registration)
        return found


async def _register(producer: Producer, lot: int) -> None:
    """The usual new-product registration, its names carrying the producer's lot number."""
    await answer_new_product(
        producer, product=f"Nước mắm lô {lot:02d}", subject=f"HTX Nước mắm lô {lot:02d}"
    )
    await producer.tap("Gửi hồ sơ")


def _side_by_side(expected: list[str], seen: list[str]) -> str:
    def short(texts: list[str], index: int) -> str:
        return repr(texts[index][:40]) if index < len(texts) else "-"

    return "".join(
        f"  {index:2} {short(expected, index):45} {short(seen, index)}\n"
        for index in range(max(len(expected), len(seen)))
    )


async def _outbox_of(engine: AsyncEngine, chat_id: int) -> str:
    """The chat's outbox rows, to tell a lost reply from one sent twice or out of order."""
    async with create_sessionmaker(engine, read_only=True)() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == str(chat_id))
            .order_by(OutboxMessage.id)
        )
        return "".join(
            f"  #{row.id} {row.key} {row.status} attempts={row.attempts} "
            f"message={row.message_id} error={row.error} {row.text[:30]!r}\n"
            for row in rows
        )


def _attempts_to(emulator: TelegramEmulator, chat_id: int) -> str:
    """Every send to the chat the emulator saw, and how it answered the refused ones."""
    refused = {id(params): code for _method, code, params in emulator.failures}
    return "".join(
        f"  {method} {refused.get(id(params), 'ok')} {str(params.get('text'))[:30]!r}\n"
        for method, params in emulator.calls
        if params.get("chat_id") == chat_id and method.startswith("send")
    )


# --- 1. Bot API faults on replies --------------------------------------------------------------

PRODUCERS = 10
STORY_ACTIONS = 16  # `_register`: /dangky, consent, thirteen answers, submit
DELIVERY_TIMEOUT = 2.0  # seconds the bot waits for the Bot API before retrying a send


@pytest.mark.both_databases
async def test_replies_arrive_exactly_once_and_in_order_through_bot_api_faults(
    make_bot: MakeBot, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    emulator.limits = Limits(overall_per_second=30, per_chat_interval=1.0)
    bot = await make_bot(ocop_delivery_timeout=DELIVERY_TIMEOUT)
    loop = asyncio.get_running_loop()

    # The same story without faults, told first: what every producer should see, in order.
    started = loop.time()
    reference = Person(bot, 5000, until=started + STORY_ACTIONS * 15)  # the harness's wait
    await _register(reference, 0)
    expected = _texts(emulator, 5000)
    alone = loop.time() - started
    assert expected[-1].count("OCOP-#") == 1
    # The story never says the same thing twice in a row; without faults neither may the bot.
    if any(text == after for text, after in pairwise(expected)):
        pytest.fail(
            "a reply came twice without any fault:\n"
            + _side_by_side(expected, expected)
            + await _outbox_of(engine, 5000)
            + _attempts_to(emulator, 5000)
        )

    # Now ten at once while sends fail. A deadline from the work: the story as long as it took
    # alone (its messages a second apart), plus for each message the attempts the faults add
    # on average, each costing at most the delivery timeout and a back-off, plus every chat held
    # for retry_after by each 429 of any chat; three times that.
    faults = Faults(
        rate_429=0.1,
        rate_500=0.1,
        rate_timeout=0.05,
        retry_after=1,
        timeout_seconds=2 * DELIVERY_TIMEOUT,
        seed=10,
    )
    failing = faults.rate_429 + faults.rate_500 + faults.rate_timeout
    attempts = 1 / (1 - failing)  # per message, on average
    worst_fault = DELIVERY_TIMEOUT + backoff(1).total_seconds()
    retries = len(expected) * (attempts - 1) * worst_fault
    pauses = PRODUCERS * len(expected) * attempts * faults.rate_429 * faults.retry_after
    budget = 3 * (alone + retries + pauses)
    emulator.faults = faults
    started = loop.time()
    producers = [Person(bot, 5001 + n, until=started + budget) for n in range(PRODUCERS)]
    await asyncio.gather(*(_register(p, n + 1) for n, p in enumerate(producers)))

    for n, producer in enumerate(producers, start=1):
        seen = _texts(emulator, producer.user_id)
        if seen != [text.replace("lô 00", f"lô {n:02d}") for text in expected]:
            pytest.fail(
                f"producer {n} saw a different conversation:\n"
                + _side_by_side(expected, seen)
                + await _outbox_of(engine, producer.user_id)
                + _attempts_to(emulator, producer.user_id)
            )
    # The faults really happened, and the bot kept within Telegram's limits throughout.
    assert min(emulator.injected[kind] for kind in ("429", "500", "timeout")) > 0
    assert emulator.throttled == 0
    assert (emulator.min_interval_per_chat() or 1.0) >= 1.0

    registrations = await _registrations_by_user(engine)
    assert sorted(registrations) == [5000 + n for n in range(PRODUCERS + 1)]
    codes = set()
    for user_id, mine in registrations.items():
        [registration] = mine
        lot = user_id - 5000
        assert registration.product_name == f"Nước mắm lô {lot:02d}"
        assert registration.subject_name == f"HTX Nước mắm lô {lot:02d}"
        assert registration.owner_name == "Nguyễn Văn A"
        assert registration.address == "Thôn Thạnh Đức, phường Sa Huỳnh"
        assert registration.phone == "+84905123456"
        assert registration.ecommerce is True
        assert registration.code in emulator.texts_to(user_id)[-1]
        codes.add(registration.code)
    assert len(codes) == PRODUCERS + 1


# --- 2. The database locked by another process -------------------------------------------------

# The 30 s: three times the bot's retry budget for one transaction, so the answer
# outlives several failed attempts and their back-off before the lock goes.
HOLD = max(30.0, BUSY_SECONDS + 2)


def _hold_write_lock(path: str, locked: threading.Event, seconds: float) -> float:
    """Another program writing to the bot's SQLite file: takes the write lock, keeps it
    `seconds`, lets go; returns when (time.monotonic) it let go."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        connection.execute("ROLLBACK")
        return time.monotonic()
    finally:
        connection.close()


def _false_or_lost() -> list[str]:
    """What the bot must not say while an answer is not saved, in every language it speaks:
    that it was saved, or that it was dropped."""
    saved = "Sorry, something went wrong. Your answers are saved; please try again."
    texts = ["Your answers are saved", "đã được lưu"]
    for language in ("vi", "en"):
        with in_language(language):
            texts += [_(saved), _failed_text()]
    return texts


@pytest.mark.both_databases
@pytest.mark.parametrize("moment", ["recording", "handling"])
async def test_an_answer_given_while_another_process_locks_the_database_is_kept(
    bot: BotUnderTest,
    engine: AsyncEngine,
    emulator: TelegramEmulator,
    database_url: str,
    moment: str,
) -> None:
    """The other program takes the lock before the answer comes (the bot cannot record it),
    or just as the bot begins to handle the recorded answer."""
    if engine.dialect.name != "sqlite":
        pytest.skip("another process holding the write lock is SQLite's; PostgreSQL locks rows")
    loop = asyncio.get_running_loop()
    # Deadline: the lock, then one more full retry budget and its back-off, then the handling.
    producer = Person(bot, 6001, until=loop.time() + HOLD + 2 * BUSY_SECONDS + 30)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in producer.text
    before = len(emulator.messages_to(6001))

    path = make_url(database_url).database
    assert path is not None
    locked = threading.Event()
    holder: list[asyncio.Future[float]] = []

    async def lock() -> None:
        holder.append(loop.run_in_executor(None, _hold_write_lock, path, locked, HOLD))
        assert await asyncio.to_thread(locked.wait, 30)

    if moment == "recording":
        await lock()
    else:
        batcher = bot.runtime.inbox.batcher
        run = batcher.run

        async def run_when_locked(event: Any, work: Any, inbox_id: int | None = None) -> Any:
            if event.chat_id == "6001" and not holder:
                await lock()
            return await run(event, work, inbox_id)

        batcher.run = run_when_locked  # type: ignore[method-assign]
    await producer.say("Nước mắm Sa Huỳnh")  # answered while the other program writes
    [holding] = holder
    released_at = await holding

    assert NEXT_AFTER_NAME in producer.text
    said = emulator.texts_to(6001)[before:]
    [question_at] = [
        at
        for at, text in zip(emulator.delivery_times(6001)[before:], said, strict=True)
        if NEXT_AFTER_NAME in text
    ]
    assert question_at >= released_at  # the answer waited for the database, it was not lost
    with in_language("vi"):
        busy = {_busy_text(), _busy_recording_text()}
    assert sum(text in busy for text in said) <= 1
    assert not [text for text in said for false in _false_or_lost() if false in text]
    assert all(text in busy or NEXT_AFTER_NAME in text for text in said), said

    # Nothing was lost: the rest of the form goes on from there, and the name is on file.
    await producer.tap("Thực phẩm")
    await producer.tap("Hợp tác xã")
    await producer.say("HTX Nước mắm Sa Huỳnh")
    await producer.say("Nguyễn Văn A")
    await producer.say("Thôn Thạnh Đức, phường Sa Huỳnh")
    await producer.say("Bỏ qua")
    await producer.share_contact("+84905123456")
    await producer.tap("4 sao")
    await producer.tap("Có")
    await producer.tap("Gửi hồ sơ")
    [registration] = (await _registrations_by_user(engine))[6001]
    assert registration.product_name == "Nước mắm Sa Huỳnh"
    assert registration.code in producer.text


def _busy_recording_text() -> str:
    """What bot/receiving.py says when it cannot even record a message (its words, which have
    no function of their own there)."""
    return _(
        "The system is busy right now and could not take your message yet. It will be "
        "handled as soon as possible; there is no need to send it again."
    )


# --- 3. Fairness -------------------------------------------------------------------------------

FLOOD = 2_000
FLOODER = 7100
RATE = Settings.model_fields["ocop_user_rate"].default  # the per-sender limits as shipped
BURST = Settings.model_fields["ocop_user_burst"].default
CONVERSATION = 9  # actions in `_short_conversation` (the consent tap is one)


async def _short_conversation(producer: Person) -> None:
    await producer.say("/start")
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    await producer.say("Nước mắm cá cơm")
    await producer.tap("Thực phẩm")
    await producer.tap("Hợp tác xã")
    await producer.say("HTX Nước mắm Sa Huỳnh")
    assert "Người đại diện" in producer.text


@dataclass
class Flood:
    alone: list[float]  # the other producer's reply latencies without the flood
    during: list[float]  # and while it was read
    allowed: int  # flood messages within the sender's limit
    kept: dict[str, str]  # the flooder's updates left in the inbox: update id -> status
    received: list[str]  # what the flooder got
    recorded_in: float  # seconds until the whole flood was recorded


async def _flood(
    make_bot: MakeBot, engine: AsyncEngine, emulator: TelegramEmulator, *, per_chat: bool
) -> Flood:
    """A short conversation alone, then the same by someone else just after one chat sent
    2,000 messages at once; the default per-sender limits. Telegram's 30 messages a second
    overall; with `per_chat`, also its one a second per chat, or else none (the producers
    answer at once, so the conversations are quick)."""
    if per_chat:
        emulator.limits = Limits(overall_per_second=30, per_chat_interval=1.0)
        pacing = Pacing(30)
    else:
        emulator.limits = Limits(overall_per_second=30)
        pacing = Pacing(30, private_interval=0.0)
    bot = await make_bot(pacing, ocop_user_rate=RATE, ocop_user_burst=BURST)
    loop = asyncio.get_running_loop()
    started = loop.time()
    alone = Person(bot, 7001, until=started + CONVERSATION * 15)  # the harness's wait
    await _short_conversation(alone)
    took = loop.time() - started

    flood = [emulator.send_text(FLOODER, f"tin {n}") for n in range(FLOOD)]
    flooded_at = loop.time()
    # Every flood update is read and recorded, a hundred per getUpdates, before the other
    # producer's first one (it came later); give each poll the whole conversation's time.
    until = flooded_at + took * (1 + FLOOD / 100) + 30
    other = Person(bot, 7002, until=until)
    await _short_conversation(other)
    await emulator.wait_idle(timeout=until - loop.time())  # all of the flood is recorded
    recorded_in = loop.time() - flooded_at

    async with create_sessionmaker(engine, read_only=True)() as session:
        rows = await session.execute(
            select(InboxUpdate.update_id, InboxUpdate.status).where(
                InboxUpdate.chat_id == str(FLOODER)
            )
        )
        kept = {update_id: status for update_id, status in rows}
    allowed = [u for u in flood if kept.get(str(u["update_id"])) != InboxStatus.EXCESS]
    for update in allowed:  # those within the limit are handled and answered like any
        await bot.tracker.wait_answered(str(update["update_id"]), timeout=until - loop.time())
    await bot.drain(timeout=until - loop.time())  # and the notice goes out
    return Flood(
        alone.latencies,
        other.latencies,
        len(allowed),
        kept,
        emulator.texts_to(FLOODER),
        recorded_in,
    )


@pytest.mark.both_databases
async def test_a_flooding_chat_gets_one_notice_and_few_replies(
    make_bot: MakeBot, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    flood = await _flood(make_bot, engine, emulator, per_chat=False)
    # `allowed` counts the one update answered with the notice instead of being handled.
    handled = flood.allowed - 1
    assert BURST <= handled <= BURST + math.ceil(RATE * flood.recorded_in)
    assert set(flood.kept.values()) == {InboxStatus.EXCESS.value}  # the excess, kept as such
    assert len(flood.kept) == FLOOD - flood.allowed
    with in_language("vi"):
        notice = _flood_text()
    notices = flood.received.count(notice)
    # Each message within the limit answered once, the rest not at all; and one polite
    # notice for the flood, however long it took to read it, after the answers before it.
    assert len(flood.received) - notices == handled
    assert notices == 1, [text[:40] for text in flood.received]
    assert flood.received.index(notice) >= BURST


@pytest.mark.both_databases
async def test_another_chat_is_answered_as_fast_while_one_floods(
    make_bot: MakeBot, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    """Under Telegram's limits, as in production: without its one message a second per chat,
    the flooder's allowed burst (twenty answers in half a second) would fill the thirty a
    second Telegram takes from the bot, and another chat's answer would wait for that window
    whatever the bot did; Telegram would not take twenty messages to one chat so fast."""
    flood = await _flood(make_bot, engine, emulator, per_chat=True)
    assert len(flood.during) == len(flood.alone) == CONVERSATION  # every action answered
    # p99 of a short conversation is its slowest answer.
    assert max(flood.during) <= max(flood.alone) + 1.0, (flood.alone, flood.during)


# --- 4. A crash between the commit and the send, and the update delivered again ---------------


@pytest.mark.both_databases
async def test_a_reply_saved_but_not_sent_goes_out_once_after_a_restart(
    bot: BotUnderTest, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    loop = asyncio.get_running_loop()
    # Deadline: a start, one claim round, one send (each at most the delivery timeout).
    patience = 2 * (IDLE_POLL + bot.settings.ocop_delivery_timeout) + 15
    producer = Person(bot, 8001, until=loop.time() + 60)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    await producer.tap("Sa Huỳnh")
    assert "Tên sản phẩm là gì?" in producer.text
    before = len(emulator.messages_to(8001))

    # The answer is saved and its reply written to the outbox, but Telegram takes no message
    # until the bot is gone: as if it had crashed right after the commit.
    handled: asyncio.Future[list[int]] = loop.create_future()

    def on_handled(row: Pending, outbox_ids: list[int]) -> None:
        if row.chat_id == "8001" and not handled.done():
            handled.set_result(outbox_ids)

    bot.runtime.inbox.listeners.append(on_handled)
    emulator.faults = Faults(rate_500=1.0)
    sends = len(await emulator.wait_for_call("sendMessage", 0, timeout=0))
    answer = emulator.send_text(8001, "Nước mắm Tân Phong")
    assert await asyncio.wait_for(handled, timeout=patience)  # committed, with replies
    await emulator.wait_for_call("sendMessage", sends + 1, timeout=patience)  # and refused
    assert emulator.injected["500"] > 0 and emulator.messages_to(8001)[before:] == []

    await bot.stop()
    emulator.faults = Faults()
    await bot.start()

    producer.until = loop.time() + patience
    await producer._do(answer)  # the reply of the saved answer arrives after the restart
    assert [NEXT_AFTER_NAME in text for text in emulator.texts_to(8001)[before:]] == [True]

    # Telegram delivers the same update again: nothing new is said, nothing is answered twice.
    producer.until = loop.time() + patience
    assert await producer.redeliver(answer) == []
    await bot.drain(timeout=patience)
    assert len(emulator.texts_to(8001)) == before + 1

    # And the form goes on from the next question, the name kept once.
    await producer.tap("Thực phẩm")
    assert "hình thức nào" in producer.text
    await producer.tap("Hợp tác xã")
    await producer.say("HTX Nước mắm Tân Phong")
    await producer.say("Nguyễn Văn A")
    await producer.say("Thôn Tân Phong")
    await producer.say("Bỏ qua")
    await producer.share_contact("+84905123456")
    await producer.tap("4 sao")
    await producer.tap("Có")
    assert producer.text.count("Nước mắm Tân Phong") >= 1
    await producer.tap("Gửi hồ sơ")
    [registration] = (await _registrations_by_user(engine))[8001]
    assert registration.product_name == "Nước mắm Tân Phong"


async def test_an_update_recorded_while_a_start_reads_the_backlog_is_answered_in_turn(
    make_bot: MakeBot,
    emulator: TelegramEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a start the bot reads what is left in the inbox before it takes new updates from
    memory. A producer's message recorded while that read was on its way (the read's snapshot
    older than it) used to stay in the database while their next message, taken from memory,
    was answered first: the answer to the wrong question, in the kill chaos under load."""
    reading, release, scanned = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_read, real_scan = inbox_worker.next_pending, inbox_worker.InboxWorker._scan

    async def held_read(session: Any, limit: int, busy: Any) -> list[Pending]:
        rows = await real_read(session, limit, busy)
        if not reading.is_set():  # the first read of the start: its snapshot is taken
            reading.set()
            await release.wait()
        return rows

    async def scan(self: inbox_worker.InboxWorker) -> None:
        await real_scan(self)
        if release.is_set():
            scanned.set()

    monkeypatch.setattr(inbox_worker, "next_pending", held_read)
    monkeypatch.setattr(inbox_worker.InboxWorker, "_scan", scan)
    running = await make_bot(Pacing(30, private_interval=0.0))
    patience = 15 + 2 * running.settings.ocop_delivery_timeout
    await asyncio.wait_for(reading.wait(), timeout=patience)

    emulator.send_text(8101, "/dangky")  # recorded and acknowledged while the read is held
    assert await emulator._wait_until(lambda: emulator.pending_updates == 0, patience)
    release.set()
    await asyncio.wait_for(scanned.wait(), timeout=patience)
    emulator.send_text(8101, "Hủy")  # their next message comes after the read

    # The same two messages from someone else, each once the first is answered.
    reference = Producer(running, 8102, consents=False)
    await reference.say("/dangky")
    await reference.say("Hủy")
    await emulator.wait_for_messages(8101, len(emulator.messages_to(8102)), timeout=patience)
    await running.drain(timeout=patience)
    assert _texts(emulator, 8101) == _texts(emulator, 8102)


@pytest.mark.both_databases
async def test_an_update_the_fast_json_encoder_refuses_is_recorded_as_it_came(
    engine: AsyncEngine,
) -> None:
    """JSON columns are written by orjson, which refuses what the standard library (and so
    PTB's reading of getUpdates) lets through: a lone surrogate, which a broken client's text
    may carry as an escape, or an integer beyond 64 bits. Refused, such an update would fail
    its recording again and again, and the receiver would never confirm it nor anything after
    it: every chat would stop. It is recorded, and read back, as it came."""
    payload = {
        "update_id": 7,
        "message": {"text": "m\ud83d", "chat": {"id": 5}, "big": 2**70, "name": "Nước mắm"},
    }
    update = Incoming("telegram", "7", "5", "5", payload)
    async with create_sessionmaker(engine)() as session, session.begin():
        assert len(await record(session, [update], utcnow())) == 1
    async with create_sessionmaker(engine)() as session:
        [row] = await pending_of(session, "telegram", "5", 10)
    assert row.payload["message"]["text"] == "m\ud83d"
    assert row.payload["message"]["name"] == "Nước mắm"
