"""Fuzz: random text, emoji, RTL marks, control characters, 10,000-character inputs, HTML and
forged button data at every step of the registration and review flows. Nothing may raise,
every reply must fit its channel and parse in its mode, and what is stored must be clean.

A few hundred examples in `make test`; `make fuzz` runs many more (OCOP_FUZZ_EXAMPLES)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.channels.text import split_message
from bot.channels.zalo_render import TEXT_LIMIT as ZALO_LIMIT
from bot.channels.zalo_render import render
from bot.emulator.wire import html_visible_text
from handlers.context import Services
from handlers.events import Event, EventKind, Outcome
from handlers.router import handle_event, prepare
from models.admin_units import Area
from models.all import Base
from models.conversations import Conversation
from models.db import create_engine, create_sessionmaker
from models.domain import Role
from models.text import clean
from models.users import User

SERVICES = Services(
    area=Area("51", ["21439", "21451", "21457", "21472", "21478"]),
    timezone=ZoneInfo("Asia/Ho_Chi_Minh"),
    clock=lambda: dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC),
)

EXAMPLES = int(os.environ.get("OCOP_FUZZ_EXAMPLES", "200"))
TELEGRAM_LIMIT = 4096
TEXT_FIELDS = {"product": 200, "owner": 200, "subject_name": 200, "address": 300, "note": 500,
               "decision": 100}

# Answers that move the forms on, mixed with the noise so that every step is reached.
USEFUL = ["/dangky", "Sản phẩm mới", "1", "2", "Sa Huỳnh", "Nước mắm cá cơm", "Thực phẩm",
          "Hợp tác xã", "HTX Nước mắm", "Nguyễn Văn A", "Thôn 1, phường Sa Huỳnh", "Bỏ qua",
          "0905 123 456", "4 sao", "Có", "Đồng ý", "quay lại", "/huy", "/hoso", "/choduyet",
          "15/11/2026", "1234/QĐ-UBND", "Thiếu giấy phép"]
NASTY = st.sampled_from([
    "\u202eevil\u202c", "\x1b[31m", "\x00\x01\x02", "<b>", "</i>", "&amp;", "&", "<script>",
    "¹", "²", "٣", "9" * 40, "/", "/ ", "//", "/start@", "👨‍👩‍👧", "\ue000", "\u200b" * 5,
    "x" * 10_000, "Đ" * 5000 + "&" * 5000, "\n" * 50, " ",
])
TEXTS = st.one_of(st.sampled_from(USEFUL), NASTY, st.text(max_size=300))
CHOICES = st.one_of(
    st.sampled_from(["cs:y:m:reg", "cs:n", "m:new", "m:reeval", "m:status", "rv:acc:1",
                     "rv:ret:1", "rv:rej:1", "rv:cert:1", "rv:fail:1", "pe:1", "rr:1", "dd:no",
                     "lang:xx", "rvl"]),
    st.builds(lambda v, rest: f"{v}:{rest}", st.integers(0, 40), st.sampled_from(
        ["o:new", "o:21478", "o:food", "o:cooperative", "o:4", "o:yes", "o:3", "b", "x", "ok",
         "e:owner", "s", "e:zzz", "o:²"])),
    st.text(max_size=64),
)
STEP = st.one_of(
    st.tuples(st.just(EventKind.TEXT), TEXTS),
    st.tuples(st.just(EventKind.CHOICE), CHOICES),
)


async def _seed(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with create_sessionmaker(engine)() as session, session.begin():
            session.add(User(channel="telegram", channel_user_id="500", chat_id="500",
                             display_name="Cán bộ", role=Role.OFFICIAL, scope=["21478"]))
            session.add(User(channel="zalo", channel_user_id="500", chat_id="500",
                             display_name="Cán bộ", role=Role.OFFICIAL, scope=["21478"]))
    finally:
        await engine.dispose()


def _check_replies(channel: str, outcome: Outcome) -> list[str]:
    problems = []
    if channel == "zalo":
        for text in render(outcome.replies).texts:
            if len(text) > ZALO_LIMIT:
                problems.append(f"a Zalo message of {len(text)} characters")
        return problems
    for reply in outcome.replies:
        for chunk in split_message(reply.text, TELEGRAM_LIMIT) if reply.text else []:
            if len(chunk) > TELEGRAM_LIMIT:
                problems.append(f"a chunk of {len(chunk)} characters")
            try:
                html_visible_text(chunk)
            except Exception as error:  # the emulator's check of Telegram's parser
                problems.append(f"invalid HTML: {error} in {chunk[:80]!r}")
    return problems


async def _run(url: str, channel: str, steps: list[tuple[EventKind, str]]) -> list[str]:
    engine = create_engine(url)
    problems: list[str] = []

    async def progress(_text: str) -> None:
        return None

    try:
        for number, (kind, payload) in enumerate(steps):
            for who in ("100", "500"):  # the producer, then the official, act alike
                is_command = kind is EventKind.TEXT and payload.startswith("/") and payload[1:]
                event = Event(
                    channel, who, who, EventKind.COMMAND if is_command else kind,
                    update_id=f"{who}-{number}", display_name="Ba",
                    text=payload if kind is EventKind.TEXT else None,
                    command=payload[1:].split()[0] if is_command and payload[1:].split() else None,
                    choice=payload if kind is EventKind.CHOICE else None,
                )
                async with create_sessionmaker(engine)() as session, session.begin():
                    prepared = await prepare(session, [event])
                    outcome = await handle_event(session, SERVICES, event, prepared, progress)
                problems += _check_replies(channel, outcome)
                if not outcome.replies and event.update_id:
                    problems.append(f"no answer to {payload[:40]!r}")
        async with create_sessionmaker(engine)() as session:
            for conversation in await session.scalars(select(Conversation)):
                for key, limit in TEXT_FIELDS.items():
                    value = conversation.answers.get(key)
                    if isinstance(value, str) and (
                        value != clean(value, multiline=key == "note") or len(value) > limit
                    ):
                        problems.append(f"stored {key}={value[:60]!r}")
    finally:
        await engine.dispose()
    return problems


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # a machine shared with other test runs: speed is measured in bench/
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(channel=st.sampled_from(["telegram", "zalo"]), steps=st.lists(STEP, min_size=1,
                                                                      max_size=15))
def test_random_input_at_every_step_never_breaks_the_bot(
    channel: str, steps: list[tuple[EventKind, str]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'fuzz.db'}"
        asyncio.run(_seed(url))
        assert asyncio.run(_run(url, channel, steps)) == []

