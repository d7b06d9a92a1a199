"""Two bot processes on one PostgreSQL, a chat's updates split between them at the same instant.

Both serve a webhook; the test plays Telegram and posts one chat's two answers, one to each
process, at once, and a double tap on "Gửi hồ sơ" the same way. Neither answer may be lost
(each process handles a chat only under its lock, and only the chat's oldest update), and
the double tap must make one registration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.chaos import start_ocop_bot, stop_ocop_bot
from bot.emulator import TelegramEmulator
from bot.emulator.wire import buttons
from bot.migrate import upgrade
from handlers.review import NOTE_FLOW, close_review_forms
from models.base import utcnow
from models.conversations import Conversation, conversations_for, save_conversations
from models.db import create_engine, create_sessionmaker
from models.inbox import InboxStatus, Incoming, Pending, lock_chats, record
from models.outbox import DeliveryChat, Pacing, Results
from models.outbox import record as record_results
from models.registrations import Registration
from models.users import User
from tests.conftest import reset_schema

CHATS = 20
SECRET = "one-chat-one-writer-0123456789abcdef"
WAIT = 60.0  # a step's answer, on a busy machine, with the chat's one-second interval
# To the question "Tên đăng ký của … hợp tác xã", then the two answers that are split.
TO_SUBJECT = (
    ("say", "/dangky", "thông tin cá nhân"),
    ("tap", "Đồng ý", "Ông/Bà muốn đăng ký gì?"),
    ("tap", "Sản phẩm mới", "xã/phường nào"),
    ("tap", "Sa Huỳnh", "Tên sản phẩm là gì?"),
    ("say", "Nước mắm cá cơm", "nhóm nào"),
    ("tap", "Thực phẩm", "hình thức nào"),
    ("tap", "Hợp tác xã", "Tên đăng ký"),
)
TO_SUMMARY = (
    ("say", "Thôn Thạnh Đức, phường Sa Huỳnh", "vị trí"),
    ("say", "Bỏ qua", "Số điện thoại"),
    ("contact", "+84905123456", "hạng mấy"),
    ("tap", "4 sao", "thương mại điện tử"),
    ("tap", "Có", "Kiểm tra lại hồ sơ đăng ký"),
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _last_text(emulator: TelegramEmulator, user: int) -> str:
    messages = emulator.messages_to(user)
    return str(messages[-1].get("text") or "") if messages else ""


async def _until_asked(emulator: TelegramEmulator, user: int, expected: str) -> None:
    deadline = time.monotonic() + WAIT
    while expected not in _last_text(emulator, user):
        left = deadline - time.monotonic()
        assert left > 0, f"chat {user} was not asked {expected!r}: {_last_text(emulator, user)!r}"
        count = len(emulator.messages_to(user))
        await emulator.wait_for_messages(user, count + 1, timeout=left)


Steps = tuple[tuple[str, str, str], ...]


async def _walk(emulator: TelegramEmulator, user: int, steps: Steps) -> None:
    for action, value, expected in steps:
        if action == "say":
            emulator.send_text(user, value, first_name="Ba")
        elif action == "tap":
            emulator.press_button(user, value)
        else:
            emulator.share_contact(user, value, contact_user_id=user)
        await _until_asked(emulator, user, expected)


class Telegram:
    """Posts updates to the processes' webhooks as Telegram would, retrying until a 200."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.update_id = 50_000_000

    def next_id(self) -> int:
        self.update_id += 1
        return self.update_id

    async def post(self, http: aiohttp.ClientSession, to: int, update: dict[str, Any]) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        deadline = time.monotonic() + WAIT
        while True:
            try:
                async with http.post(self.urls[to], json=update, headers=headers) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"update {update['update_id']} never taken"
            await asyncio.sleep(0.1)  # Telegram's back-off between webhook retries

    def text(self, user: int, text: str) -> dict[str, Any]:
        sender = {"id": user, "is_bot": False, "first_name": "Ba"}
        return {
            "update_id": self.next_id(),
            "message": {
                "message_id": self.update_id,
                "date": int(time.time()),
                "chat": {"id": user, "type": "private", "first_name": "Ba"},
                "from": sender,
                "text": text,
            },
        }

    def press(self, message: dict[str, Any], user: int, data: str) -> dict[str, Any]:
        sender = {"id": user, "is_bot": False, "first_name": "Ba"}
        return {
            "update_id": self.next_id(),
            "callback_query": {
                "id": f"cq{self.update_id}",
                "from": sender,
                "chat_instance": str(user),
                "message": message,
                "data": data,
            },
        }


async def test_a_chat_split_between_two_processes_loses_nothing_and_submits_once(
    postgres_url: str, emulator: TelegramEmulator, tmp_path: Path
) -> None:
    engine = await _migrated(postgres_url)
    ports = [_free_port(), _free_port()]
    urls = [f"http://127.0.0.1:{port}/telegram/hook" for port in ports]
    processes = []
    for port, url in zip(ports, urls, strict=True):
        environment = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": emulator.token,
            "TELEGRAM_API_URL": emulator.api_url,
            "DATABASE_URL": postgres_url,
            "OCOP_ADMINS": "",
            "WEBHOOK_URL": url,
            "WEBHOOK_PORT": str(port),
            "WEBHOOK_SECRET": SECRET,
        }
        processes.append(await start_ocop_bot(tmp_path, environment))
    users = [6_100_001 + n for n in range(CHATS)]
    telegram = Telegram(urls)
    try:
        # Both set the emulator's webhook; the form is walked through whichever set it last.
        await emulator.wait_for_call("setWebhook", 2, timeout=WAIT)
        await asyncio.gather(*(_walk(emulator, user, TO_SUBJECT) for user in users))
        async with aiohttp.ClientSession() as http:
            # Two answers of each chat at once, one to each process.
            await asyncio.gather(
                *(
                    telegram.post(http, index, telegram.text(user, answer))
                    for user in users
                    for index, answer in enumerate(
                        (f"Hợp Tác Xã Số {user}", f"Người Đại Diện {user}")
                    )
                )
            )
            asked = "Địa chỉ sản xuất"
            await asyncio.gather(*(_until_asked(emulator, user, asked) for user in users))
            await asyncio.gather(*(_walk(emulator, user, TO_SUMMARY) for user in users))
            # A double tap on "Gửi hồ sơ": the same button pressed twice, one to each process.
            taps = []
            for user in users:
                summary = emulator.messages_to(user)[-1]
                [data] = [b["callback_data"] for b in buttons(summary) if "Gửi" in b["text"]]
                message = {**summary["message"], "reply_markup": summary["reply_markup"]}
                taps += [
                    telegram.post(http, index, telegram.press(message, user, data))
                    for index in (0, 1)
                ]
            await asyncio.gather(*taps)
        await asyncio.gather(*(_until_asked(emulator, user, "OCOP-") for user in users))
        await emulator.wait_idle(timeout=WAIT, quiet=2.0)
    finally:
        logs = await asyncio.gather(*(stop_ocop_bot(p, timeout=30) for p in processes))
    assert [p.returncode for p in processes] == [0, 0], "\n".join(logs)[-3000:]

    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            registrations = (
                await session.execute(
                    select(User.channel_user_id, func.count(Registration.id))
                    .join(Registration, Registration.submitted_by_user_id == User.id)
                    .group_by(User.channel_user_id)
                )
            ).all()
            stored = {
                int(user): (subject, owner)
                for user, subject, owner in await session.execute(
                    select(
                        User.channel_user_id, Registration.subject_name, Registration.owner_name
                    ).join(Registration, Registration.submitted_by_user_id == User.id)
                )
            }
            forms = await session.scalar(
                select(func.count()).select_from(Conversation).where(Conversation.flow.is_not(None))
            )
    finally:
        await engine.dispose()
    assert dict(registrations) == {str(user): 1 for user in users}  # one each, not two
    for user in users:  # both answers kept, neither overwritten by the other
        expected = {f"Hợp Tác Xã Số {user}", f"Người Đại Diện {user}"}
        assert set(stored[user]) == expected, stored[user]
    assert forms == 0
    receipts = [t for u in users for t in emulator.texts_to(u) if "OCOP-" in t]
    assert len(receipts) == CHATS  # one receipt each: the second tap was told it is done


async def test_one_chats_updates_recorded_at_once_are_committed_in_their_order(
    postgres_url: str,
) -> None:
    """Two receivers record one chat's updates at the same instant (webhook requests served in
    parallel, or two processes behind one address). The later one must not commit while the
    earlier one is still open: the worker would answer it first, and the earlier update (its id
    lower, seen only later) after it, past the check that a chat's oldest update goes first."""
    engine = await _migrated(postgres_url)
    sessions = create_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)

    def update(number: int) -> Incoming:
        return Incoming("telegram", str(number), "4242", "4242", {"update_id": number})

    async def second() -> list[Pending]:
        async with sessions() as session, session.begin():
            return await record(session, [update(2)], now)

    try:
        async with sessions() as session, session.begin():
            [earlier] = await record(session, [update(1)], now)
            later = asyncio.create_task(second())
            await _held_back(
                later,
                engine,
                "the second receiver",
                "the later update was committed before the earlier one",
            )
        [after] = await later
        assert after.id > earlier.id
    finally:
        await engine.dispose()


async def test_two_receivers_recording_two_floods_crosswise_both_commit(postgres_url: str) -> None:
    """Two receivers each record one chat's update and, in the same transaction, another chat's
    excess (a flood beyond its sender's rate), crosswise. The excess is never handled, so it
    takes no recording lock: had it, each would wait for the other's, and PostgreSQL would
    break the deadlock by failing one (its chats told the system is busy)."""
    engine = await _migrated(postgres_url)
    sessions = create_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    both_recorded = asyncio.Barrier(2)

    async def receive(allowed: str, flooding: str, number: int) -> int:
        async with sessions() as session, session.begin():
            new = await record(
                session, [Incoming("telegram", str(number), allowed, allowed, {})], now
            )
            await both_recorded.wait()
            excess = Incoming("telegram", str(number + 1), flooding, flooding, {})
            new += await record(session, [excess], now, InboxStatus.EXCESS)
        return len(new)

    try:
        recorded = await asyncio.wait_for(
            asyncio.gather(receive("4301", "4302", 10), receive("4302", "4301", 20)), WAIT
        )
    finally:
        await engine.dispose()
    assert recorded == [2, 2]


async def test_a_review_form_closed_while_its_official_answers_stays_closed(
    postgres_url: str,
) -> None:
    """An admin's /official remove closes the official's open review form while a batch of
    another process handles the official's own answer to it. Whatever the order, the form must
    end closed: the closing waits for the chat's lock that batch holds, and reads the form as it
    left it; the batch's write of the conversation sets only the columns it changed."""
    engine = await _migrated(postgres_url)
    sessions = create_sessionmaker(engine)
    chat = ("telegram", "4401")
    async with sessions() as session, session.begin():
        session.add(
            Conversation(
                channel=chat[0],
                chat_id=chat[1],
                flow=NOTE_FLOW.name,
                step="note",
                answers={},
                meta={"registration": 7},
                version=5,
            )
        )
    official = User(channel=chat[0], channel_user_id=chat[1], chat_id=chat[1])

    async def remove_official() -> None:
        async with sessions() as session, session.begin():
            await close_review_forms(session, official)

    try:
        async with sessions() as batch, batch.begin():
            await lock_chats(batch, [chat])  # as Batcher._turns takes it
            conversation = (await conversations_for(batch, [chat]))[chat]
            closing = asyncio.create_task(remove_official())
            await _held_back(
                closing, engine, "the closing", "the form was closed under the batch handling it"
            )
            conversation.answers, conversation.step = {"note": "Thiếu ảnh nhãn"}, "summary"
            conversation.version += 1
            await save_conversations(batch, [conversation])
        await asyncio.wait_for(closing, WAIT)
        async with sessions() as session:
            after = await session.get(Conversation, chat)
    finally:
        await engine.dispose()
    assert after is not None
    assert (after.flow, after.step, after.answers, after.meta) == (None, None, {}, None)


async def _migrated(postgres_url: str) -> AsyncEngine:
    """The test's database with a fresh schema, as `ocop-bot migrate` makes it."""
    engine = create_engine(postgres_url)
    await reset_schema(engine)
    await asyncio.to_thread(upgrade, postgres_url)
    return engine


async def _held_back(task: asyncio.Task[Any], engine: AsyncEngine, who: str, why: str) -> None:
    """Wait until `task` waits for a lock; fail with `why` if it ended instead."""
    deadline = time.monotonic() + WAIT
    while not task.done() and not await _waiting_for_a_lock(engine):
        assert time.monotonic() < deadline, f"{who} neither waited nor ended"
        await asyncio.sleep(0.05)  # looking again; the condition is the database's
    assert not task.done(), why


async def _waiting_for_a_lock(engine: AsyncEngine) -> bool:
    """Whether a transaction waits for a lock: a chat's advisory lock, or a row another
    transaction updated."""
    async with engine.connect() as watcher:
        count = await watcher.scalar(
            text(
                "SELECT count(*) FROM pg_locks"
                " WHERE locktype IN ('advisory', 'transactionid') AND NOT granted"
            )
        )
    return bool(count)


async def test_a_batch_writes_back_only_what_it_changed_in_a_conversation(
    postgres_url: str,
) -> None:
    """A batch writes its conversations in a few statements, not through the unit of work; like
    the unit of work, it must set only the columns its events changed, so that a change made
    meanwhile by another transaction to another column (here the form's flow) is kept."""
    engine = await _migrated(postgres_url)
    sessions = create_sessionmaker(engine)
    chat = ("telegram", "4402")
    async with sessions() as session, session.begin():
        session.add(
            Conversation(
                channel=chat[0], chat_id=chat[1], flow="registration", step="a", answers={}
            )
        )
    try:
        async with sessions() as batch, batch.begin():
            conversation = (await conversations_for(batch, [chat]))[chat]
            async with sessions() as other, other.begin():
                await other.execute(
                    update(Conversation)
                    .where(Conversation.chat_id == chat[1])
                    .values(flow=None, meta={"closed": True})
                )
            conversation.answers, conversation.step = {"a": "Nước mắm"}, "b"
            await save_conversations(batch, [conversation])
        async with sessions() as session:
            after = await session.get(Conversation, chat)
    finally:
        await engine.dispose()
    assert after is not None
    assert (after.flow, after.meta, after.step, after.answers) == (
        None,
        {"closed": True},
        "b",
        {"a": "Nước mắm"},
    )


async def test_delivery_results_written_beside_a_claim_of_the_same_chats_do_not_deadlock(
    postgres_url: str,
) -> None:
    """The delivery worker writes what it sent (each chat's next free moment) while its claim,
    in another transaction, plans the same chats' next messages. The claim's flush updates the
    chats in key order; the results came in the order the sends finished, and the two deadlocked
    (PostgreSQL aborted the results' write: found in the conversation benchmark). Both now lock
    in key order: the results wait for the claim, then follow it."""
    engine = await _migrated(postgres_url)
    sessions = create_sessionmaker(engine)
    now = utcnow()
    chats = cast(Table, DeliveryChat.__table__)
    async with sessions() as session, session.begin():
        session.add_all(DeliveryChat(channel="telegram", chat_id=c, next_at=now) for c in "AB")

    async def plan(session: AsyncSession, chat: str) -> None:
        await session.execute(
            update(chats)
            .where(chats.c.channel == "telegram", chats.c.chat_id == chat)
            .values(next_at=now + dt.timedelta(seconds=5))
        )

    async def write_results() -> None:
        sent = Results(chat_sent=[("B", now), ("A", now)])  # B's send finished first
        async with sessions() as session, session.begin():
            await record_results(session, "telegram", sent, now, Pacing(30))

    try:
        async with sessions() as claim, claim.begin():
            await plan(claim, "A")
            writing = asyncio.create_task(write_results())
            await _held_back(
                writing, engine, "the results' write", "it did not wait for the claim's chat"
            )
            await plan(claim, "B")  # the deadlock, had the write taken B before waiting for A
        await asyncio.wait_for(writing, WAIT)
        async with sessions() as session:
            moments = dict((await session.execute(select(chats.c.chat_id, chats.c.next_at))).all())
    finally:
        await engine.dispose()
    # The results' write came second: each chat's next moment a second after the send, as the
    # write sets it only where it moves the moment later (the claim's five seconds stand).
    assert moments == {"A": now + dt.timedelta(seconds=5), "B": now + dt.timedelta(seconds=5)}
