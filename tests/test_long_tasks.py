"""Long tasks run after the batch, in sessions of their own: the export's file arrives as a
notice, an import writes once however often it runs, a bad spreadsheet cannot stall the runner,
and nobody holds the write lock while a file is parsed."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import tasks as runner_module
from bot.tasks import LEASE, TaskRunner
from handlers import documents, imports
from handlers import tasks as task_kinds
from handlers.context import Context, Services, TaskContext
from handlers.events import Event, EventKind, LongTask, Outcome, Reply
from handlers.i18n import use_language
from handlers.reports import parsing
from handlers.routes import Call
from models.admin_units import Area
from models.base import utcnow
from models.certificates import Certificate
from models.conversations import Conversation
from models.db import create_sessionmaker
from models.domain import Role
from models.outbox import OutboxMessage
from models.tasks import LongTaskRow, TaskStatus, forget_tasks, queue_tasks
from models.users import User
from tests import factories
from tests.harness import Clock

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])
SA_HUYNH, TRA_CAU = "21478", "21451"
NOTHING = "Chưa nhập được dữ liệu nào: "
HEADER = "Tên sản phẩm,Người đại diện,Loại hình chủ thể,Xã/phường,Địa chỉ,Hạng sao,Ngày cấp\r\n"


def services() -> Services:
    clock = Clock(dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC))
    return Services(area=AREA, timezone=ZoneInfo("Asia/Ho_Chi_Minh"), clock=clock)


def certificate_list(rows: int) -> bytes:
    lines = [f"Sản phẩm {n},Người {n},Hộ,Sa Huỳnh,Thôn 1,3,15/03/2023\r\n" for n in range(rows)]
    return (HEADER + "".join(lines)).encode()


async def make_user(
    engine: AsyncEngine, role: Role, scope: list[str] | None = None, language: str = "vi"
) -> User:
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await factories.user(session, role, scope)
        user.language = language
        return user


async def queue(engine: AsyncEngine, user: User, *tasks: LongTask, key: str = "u1") -> int:
    async with create_sessionmaker(engine)() as session, session.begin():
        return await queue_tasks(
            session,
            channel=user.channel,
            chat_id=user.chat_id,
            user_id=user.id,
            key=f"telegram:{key}",
            tasks=tasks,
            now=utcnow(),
        )


async def task_rows(engine: AsyncEngine) -> list[LongTaskRow]:
    async with create_sessionmaker(engine, read_only=True)() as session:
        return list(await session.scalars(select(LongTaskRow).order_by(LongTaskRow.id)))


async def messages(engine: AsyncEngine, prefix: str) -> list[OutboxMessage]:
    async with create_sessionmaker(engine, read_only=True)() as session:
        found = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.key.startswith(prefix)).order_by("id")
        )
        return list(found)


async def count_certificates(engine: AsyncEngine) -> int:
    async with create_sessionmaker(engine, read_only=True)() as session:
        return int(await session.scalar(select(func.count()).select_from(Certificate)) or 0)


def fetching(content: bytes) -> dict[str, Callable[[str], Awaitable[bytes]]]:
    async def fetch(_file_id: str) -> bytes:
        return content

    return {"telegram": fetch}


@asynccontextmanager
async def running(
    engine: AsyncEngine, runner: TaskRunner | None = None, **kwargs: Any
) -> AsyncIterator[TaskRunner]:
    runner = runner or TaskRunner(engine, services(), queued=lambda: None, **kwargs)
    loop = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        await runner.stop()
        await loop


async def settled(engine: AsyncEngine, timeout: float = 30.0) -> list[LongTaskRow]:
    """Wait until every task is done or failed."""
    async with asyncio.timeout(timeout):
        while True:
            rows = await task_rows(engine)
            if all(row.status in (TaskStatus.DONE, TaskStatus.FAILED) for row in rows):
                return rows
            await asyncio.sleep(0.05)


@pytest.mark.both_databases
async def test_an_export_arrives_as_an_xlsx_notice(engine: AsyncEngine) -> None:
    official = await make_user(engine, Role.OFFICIAL, [SA_HUYNH])
    async with create_sessionmaker(engine)() as session, session.begin():
        producer = await factories.user(session)
        for commune, name in ((SA_HUYNH, "Nước mắm Sa Huỳnh"), (TRA_CAU, "Tỏi Trà Câu")):
            owner = await factories.subject(session, f"HTX {name}")
            item = await factories.product(session, owner, name, commune)
            at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
            factories.registration(session, producer, item, owner, at=at)
    export = LongTask("export", {"year": 2026, "communes": [SA_HUYNH, TRA_CAU], "csv": False})
    assert await queue(engine, official, export) == 1

    async with running(engine, fetchers={}):
        [row] = await settled(engine)

    assert (row.status, row.attempts, row.leased_by is not None) == (TaskStatus.DONE, 1, True)
    [message] = await messages(engine, f"task:{row.id}")
    assert message.chat_id == official.chat_id and message.user_id == official.id
    assert message.text == "Hồ sơ đăng ký năm 2026: 1."  # the official's one commune
    assert message.document_name == "dang-ky-ocop-2026.xlsx" and message.document
    table = openpyxl.load_workbook(io.BytesIO(message.document)).worksheets[0]
    cells = {str(cell) for line in table.iter_rows(values_only=True) for cell in line if cell}
    assert "Nước mắm Sa Huỳnh" in cells and "Tỏi Trà Câu" not in cells


async def test_a_digest_preview_lists_the_officials_new_registrations(engine: AsyncEngine) -> None:
    official = await make_user(engine, Role.OFFICIAL, [SA_HUYNH], language="en")
    async with create_sessionmaker(engine)() as session, session.begin():
        producer = await factories.user(session)
        owner = await factories.subject(session, "HTX Sa Huỳnh")
        item = await factories.product(session, owner, "Mắm ruốc", SA_HUYNH)
        at = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)  # within the last day
        factories.registration(session, producer, item, owner, at=at)
    await queue(engine, official, LongTask("digest"))

    async with running(engine, fetchers={}):
        [row] = await settled(engine)

    [digest, *_rest] = await messages(engine, f"task:{row.id}#")
    assert "OCOP digest" in digest.text and "Mắm ruốc" in digest.text  # built in English


@pytest.mark.both_databases
async def test_an_import_writes_once_when_queued_twice_and_after_a_crash(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await make_user(engine, Role.ADMIN)
    monkeypatch.setattr(imports, "CHUNK", 5)
    monkeypatch.setattr(imports, "TELL_PROGRESS_FROM", 10)
    args = {"file_id": "f1", "file_name": "list.csv", "today": "2026-11-29"}
    assert await queue(engine, admin, LongTask("import", args)) == 1
    assert await queue(engine, admin, LongTask("import", args)) == 0  # the same event again

    stores = 0
    real_store = imports.store_imported

    async def crash_on_the_third_chunk(session: Any, rows: Any, known: Any) -> None:
        nonlocal stores
        stores += 1
        if stores == 3:  # as if the process died: nothing more is recorded, the lease stays
            raise asyncio.CancelledError
        await real_store(session, rows, known)

    monkeypatch.setattr(imports, "store_imported", crash_on_the_third_chunk)
    async with running(engine, fetchers=fetching(certificate_list(12))) as first:
        async with asyncio.timeout(30), first.finished:
            await first.finished.wait_for(lambda: stores >= 3 and not first._running)
    [row] = await task_rows(engine)
    assert (row.status, row.cursor, row.attempts) == (TaskStatus.RUNNING, 10, 1)
    assert await count_certificates(engine) == 10
    assert not await messages(engine, f"task:{row.id}#")

    # Another runner, once the lease has run out, goes on from the cursor.
    later = TaskRunner(
        engine,
        services(),
        fetchers=fetching(certificate_list(12)),
        queued=lambda: None,
        clock=lambda: utcnow() + LEASE + dt.timedelta(seconds=1),
    )
    async with running(engine, later):
        [row] = await settled(engine)
    assert (row.status, row.attempts, row.cursor) == (TaskStatus.DONE, 2, 12)
    assert await count_certificates(engine) == 12
    [report] = await messages(engine, f"task:{row.id}#")
    assert report.text == "✅ Đã nhập 12 giấy chứng nhận."
    [progress] = await messages(engine, f"task:{row.id}:progress")  # not repeated by the rerun
    assert "12" in progress.text

    # The same file sent again: every row is there already.
    assert await queue(engine, admin, LongTask("import", args), key="u2") == 1
    async with running(engine, fetchers=fetching(certificate_list(12))):
        rows = await settled(engine)
    [again] = await messages(engine, f"task:{rows[1].id}#")
    assert again.text.startswith("✅ Đã nhập 0 giấy chứng nhận.")
    assert again.text.count("đã có trong danh sách") == 12
    assert await count_certificates(engine) == 12


async def test_a_parse_past_its_memory_or_time_limit_is_reported_and_the_runner_goes_on(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await make_user(engine, Role.ADMIN)
    official = await make_user(engine, Role.OFFICIAL)
    monkeypatch.setattr(parsing, "PARSE_MEMORY", 512 * 1024 * 1024)
    monkeypatch.setattr(parsing, "PARSE_SECONDS", 3.0)
    args = {"file_id": "f", "file_name": "bomb.xlsx", "today": "2026-11-29"}

    async with running(engine, fetchers=fetching(b"PK\x03\x04"), concurrency=1):
        monkeypatch.setattr(parsing, "PARSER", _parser("hog"))
        await queue(engine, admin, LongTask("import", args), key="hog")
        await settled(engine)
        monkeypatch.setattr(parsing, "PARSER", _parser("sleeper"))
        started = time.monotonic()
        await queue(engine, admin, LongTask("import", args), key="sleeper")
        await settled(engine)
        waited = time.monotonic() - started
        await queue(engine, official, LongTask("stats", {"year": 2026}), key="stats")
        hog, sleeper, stats = await settled(engine)

    assert [row.status for row in (hog, sleeper, stats)] == [TaskStatus.DONE] * 3
    [memory] = await messages(engine, f"task:{hog.id}#")
    assert memory.text.startswith(NOTHING) and "quá nhiều bộ nhớ" in memory.text
    [timeout] = await messages(engine, f"task:{sleeper.id}#")
    assert timeout.text.startswith(NOTHING) and "thời gian cho phép" in timeout.text
    assert waited < 10  # killed at the time limit, not after the parser's two minutes
    [figures, sheet] = await messages(engine, f"task:{stats.id}#")
    assert "Số liệu OCOP" in figures.text and sheet.document_name == "so-lieu-ocop-2026.xlsx"


def _parser(name: str) -> parsing.Parser:
    from tests import task_parsers

    parser: parsing.Parser = getattr(task_parsers, name)
    return parser


async def test_nobody_holds_the_write_lock_while_a_file_downloads_or_parses(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    admin = await make_user(engine, Role.ADMIN)
    writer = create_sessionmaker(engine)
    marker = tmp_path / "parsing"
    monkeypatch.setattr(parsing, "PARSER", _parser("slow"))
    write_waits: list[float] = []

    async def write_now() -> None:
        started = time.monotonic()
        async with asyncio.timeout(2), writer() as session, session.begin():
            await factories.user(session)
        write_waits.append(time.monotonic() - started)

    async def fetch(_file_id: str) -> bytes:
        await write_now()  # the task downloads outside any transaction
        return str(marker).encode()

    args = {"file_id": "f", "file_name": "list.xlsx", "today": "2026-11-29"}
    await queue(engine, admin, LongTask("import", args))
    async with running(engine, fetchers={"telegram": fetch}):
        for _ in range(2000):  # the child process has started parsing
            if marker.exists():
                break
            await asyncio.sleep(0.01)
        await write_now()
        [row] = await task_rows(engine)
        assert row.status == TaskStatus.RUNNING  # still parsing
        [row] = await settled(engine)

    assert row.status == TaskStatus.DONE
    assert max(write_waits) < 0.5, write_waits


async def test_a_failing_task_is_retried_then_its_user_is_told(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = await make_user(engine, Role.OFFICIAL)
    producer = await make_user(engine, Role.PRODUCER, language="en")
    runs = 0

    async def boom(ctx: TaskContext) -> list[Reply]:
        nonlocal runs
        runs += 1
        raise RuntimeError("the report broke")

    monkeypatch.setitem(task_kinds.TASKS, "boom", task_kinds.Kind(boom, Role.OFFICIAL))
    monkeypatch.setattr(runner_module, "backoff", lambda _attempts: dt.timedelta(0))
    await queue(engine, official, LongTask("boom"), key="boom")
    await queue(engine, producer, LongTask("export", {"year": 2026, "communes": []}), key="p")
    async with running(engine, fetchers={}):
        failed, refused = await settled(engine)

    assert (failed.status, failed.attempts, runs) == (TaskStatus.FAILED, 3, 3)
    assert failed.error == "RuntimeError: the report broke"
    [sorry] = await messages(engine, f"task:{failed.id}")
    assert sorry.text.startswith("Xin lỗi, chưa thể hoàn tất việc này.")
    [refusal] = await messages(engine, f"task:{refused.id}")  # no longer an official
    assert refusal.text == "Sorry, this is only for OCOP officials."  # in their language


async def test_stopping_cancels_an_overrunning_task_and_a_later_run_takes_it_over(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = await make_user(engine, Role.OFFICIAL)
    started = asyncio.Event()
    runs = 0

    async def stuck_once(ctx: TaskContext) -> list[Reply]:
        nonlocal runs
        runs += 1
        if runs == 1:
            started.set()
            await asyncio.sleep(3600)
        return [Reply("xong")]

    monkeypatch.setitem(task_kinds.TASKS, "stuck", task_kinds.Kind(stuck_once, Role.OFFICIAL))
    await queue(engine, official, LongTask("stuck"))
    runner = TaskRunner(engine, services(), fetchers={}, queued=lambda: None)
    loop = asyncio.create_task(runner.run())
    async with asyncio.timeout(10):
        await started.wait()
    began = time.monotonic()
    await runner.stop(grace=0.5)
    await loop
    assert time.monotonic() - began < 2
    [row] = await task_rows(engine)
    assert row.status == TaskStatus.RUNNING and row.lease_until and row.lease_until > utcnow()

    later = TaskRunner(
        engine,
        services(),
        fetchers={},
        queued=lambda: None,
        clock=lambda: utcnow() + LEASE + dt.timedelta(seconds=1),
    )
    async with running(engine, later):
        [row] = await settled(engine)
    assert (row.status, row.attempts, runs) == (TaskStatus.DONE, 2, 2)
    assert [message.text for message in await messages(engine, f"task:{row.id}")] == ["xong"]


async def test_the_commands_answer_at_once_and_leave_the_work_to_a_task(
    engine: AsyncEngine,
) -> None:
    use_language("vi")
    official = await make_user(engine, Role.OFFICIAL, [SA_HUYNH])
    async with create_sessionmaker(engine)() as session:
        ctx = Context(session, official, services())
        conversation = Conversation(channel="telegram", chat_id=official.chat_id)

        async def command(handler: Any, *args: str) -> Outcome:
            event = Event("telegram", official.channel_user_id, official.chat_id, EventKind.COMMAND)
            outcome: Outcome = await handler(Call(ctx, conversation, event, args))
            return outcome

        exported = await command(documents.export, "2026", "csv")
        assert [reply.text for reply in exported.replies] == ["Đang lập bảng…"]
        assert exported.tasks == [
            LongTask("export", {"year": 2026, "communes": [SA_HUYNH], "csv": True})
        ]
        refused = await command(documents.export, "2026", TRA_CAU)  # outside their scope
        assert "Cách dùng" in refused.replies[0].text and not refused.tasks
        counted = await command(documents.stats, "2026")
        assert counted.tasks == [LongTask("stats", {"year": 2026})]
        assert not (await command(documents.stats, "1990")).tasks
        assert (await command(documents.digest_now)).tasks == [LongTask("digest")]


async def test_finished_tasks_are_forgotten_after_a_while(engine: AsyncEngine) -> None:
    official = await make_user(engine, Role.OFFICIAL)
    await queue(engine, official, LongTask("digest"), LongTask("digest"), LongTask("digest"))
    now = utcnow()
    async with create_sessionmaker(engine)() as session, session.begin():
        old, recent, waiting = await session.scalars(select(LongTaskRow).order_by("id"))
        old.status, old.finished_at = TaskStatus.DONE.value, now - dt.timedelta(days=8)
        recent.status, recent.finished_at = TaskStatus.FAILED.value, now - dt.timedelta(days=6)
        waiting.created_at = now - dt.timedelta(days=30)
    async with create_sessionmaker(engine)() as session, session.begin():
        assert await forget_tasks(session, now - dt.timedelta(days=7)) == 1
    assert [row.id for row in await task_rows(engine)] == [recent.id, waiting.id]
