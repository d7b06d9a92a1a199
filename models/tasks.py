"""Long tasks (an export, an import, statistics) recorded with the event that asked for them and
run after its batch, outside the shared transaction, by bot/tasks.py.

A task is queued once per key (the event's), leased to one runner at a time, and run again when
its runner's lease runs out (a crash). Work that writes in several transactions keeps how far it
got in `cursor` and `state`, updated only while the lease is still this runner's.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import JSON, ForeignKey, Index, String, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models import keys
from models.base import Base, insert_if_absent


class LeaseLost(Exception):
    """Another runner took the task over (this one's lease ran out): stop, write nothing more."""


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class TaskRequest(Protocol):
    """What a handler asks for (handlers.events.LongTask; models do not import handlers)."""

    @property
    def kind(self) -> str: ...

    @property
    def args(self) -> dict[str, Any]: ...


class LongTaskRow(Base):
    __tablename__ = "long_tasks"
    # The claim asks for the oldest pending task, or a running one whose lease ran out.
    __table_args__ = (Index("ix_long_tasks_queue", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # A pending task is not claimed before this (the back-off after a failed attempt).
    not_before: Mapped[dt.datetime]
    lease_until: Mapped[dt.datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(64))
    # How far work done in several transactions got, and what it decided before starting.
    cursor: Mapped[int] = mapped_column(default=0)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))


async def queue_tasks(
    session: AsyncSession,
    *,
    channel: str,
    chat_id: str,
    user_id: int,
    key: str,
    tasks: Sequence[TaskRequest],
    now: dt.datetime,
) -> int:
    """Record the tasks one event asked for, the n-th under f"{key}:{n}" (the event's key, e.g.
    f"{channel}:{update_id}"), each once however often it is offered; returns how many were new."""
    queued = 0
    for number, task in enumerate(tasks):
        queued += await insert_if_absent(
            session,
            LongTaskRow,
            key=keys.task(key, number),
            channel=channel,
            chat_id=chat_id,
            user_id=user_id,
            kind=task.kind,
            args=task.args,
            status=TaskStatus.PENDING.value,
            attempts=0,
            not_before=now,
            cursor=0,
            created_at=now,
        )
    return queued


def _claimable(now: dt.datetime) -> Any:
    return or_(
        and_(LongTaskRow.status == TaskStatus.PENDING.value, LongTaskRow.not_before <= now),
        and_(LongTaskRow.status == TaskStatus.RUNNING.value, LongTaskRow.lease_until < now),
    )


async def next_due(session: AsyncSession, now: dt.datetime) -> dt.datetime | None:
    """Whether a task can be claimed now (`now` itself), else when the next one will be; a read,
    so a runner with nothing to do never takes the write lock to find that out."""
    if await session.scalar(select(LongTaskRow.id).where(_claimable(now)).limit(1)) is not None:
        return now
    return await session.scalar(
        select(LongTaskRow.not_before)
        .where(LongTaskRow.status == TaskStatus.PENDING.value)
        .order_by(LongTaskRow.not_before)
        .limit(1)
    )


async def claim_task(
    session: AsyncSession, *, worker: str, now: dt.datetime, lease: dt.timedelta
) -> LongTaskRow | None:
    """Lease the oldest pending task, or a running one whose runner's lease ran out; counts the
    attempt. Several processes on PostgreSQL skip each other's rows instead of waiting."""
    row = await session.scalar(
        select(LongTaskRow)
        .where(_claimable(now))
        .order_by(LongTaskRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if row is None:
        return None
    row.status = TaskStatus.RUNNING.value
    row.attempts += 1
    row.leased_by = worker
    row.lease_until = now + lease
    await session.flush()
    return row


def _mine(task_id: int, worker: str) -> Any:
    return and_(
        LongTaskRow.id == task_id,
        LongTaskRow.leased_by == worker,
        LongTaskRow.status == TaskStatus.RUNNING.value,
    )


async def _update_mine(session: AsyncSession, task_id: int, worker: str, **values: Any) -> bool:
    result = await session.execute(
        update(LongTaskRow).where(_mine(task_id, worker)).values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def extend_leases(
    session: AsyncSession, task_ids: Sequence[int], *, worker: str, until: dt.datetime
) -> None:
    """The runner is still at work on these: nobody else may claim them before `until`."""
    if task_ids:
        await session.execute(
            update(LongTaskRow)
            .where(
                LongTaskRow.id.in_(task_ids),
                LongTaskRow.leased_by == worker,
                LongTaskRow.status == TaskStatus.RUNNING.value,
            )
            .values(lease_until=until)
        )


async def save_state(
    session: AsyncSession, task_id: int, *, worker: str, state: dict[str, Any]
) -> bool:
    """Record what the task decided before it starts writing; False when the lease is lost."""
    return await _update_mine(session, task_id, worker, state=state)


async def advance_cursor(
    session: AsyncSession, task_id: int, *, worker: str, expected: int, to: int
) -> bool:
    """Move the cursor from `expected` to `to` in the transaction that does that part of the
    work; False (roll that work back) when the lease or the cursor is no longer as expected. On
    PostgreSQL the row stays locked until that transaction ends, so two runners never overlap."""
    result = await session.execute(
        update(LongTaskRow)
        .where(_mine(task_id, worker), LongTaskRow.cursor == expected)
        .values(cursor=to)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish_task(
    session: AsyncSession,
    task_id: int,
    *,
    worker: str,
    now: dt.datetime,
    error: str | None = None,
) -> bool:
    """Done, or failed for good with `error`; False when the lease is no longer this worker's
    (another runner took the task over and will finish it)."""
    return await _update_mine(
        session,
        task_id,
        worker,
        status=(TaskStatus.FAILED if error else TaskStatus.DONE).value,
        finished_at=now,
        lease_until=None,
        error=error[:500] if error else None,
    )


async def retry_task(
    session: AsyncSession, task_id: int, *, worker: str, not_before: dt.datetime, error: str
) -> bool:
    """An attempt failed: pending again, not before `not_before`."""
    return await _update_mine(
        session,
        task_id,
        worker,
        status=TaskStatus.PENDING.value,
        not_before=not_before,
        lease_until=None,
        leased_by=None,
        error=error[:500],
    )


async def forget_tasks(session: AsyncSession, before: dt.datetime, limit: int = 5000) -> int:
    """Drop up to `limit` tasks finished before `before` (their messages are in the outbox);
    returns how many. Callers repeat in fresh transactions until it returns less."""
    finished = (
        select(LongTaskRow.id)
        .where(
            LongTaskRow.status.in_([TaskStatus.DONE.value, TaskStatus.FAILED.value]),
            LongTaskRow.finished_at < before,
        )
        .limit(limit)
    )
    result = await session.execute(delete(LongTaskRow).where(LongTaskRow.id.in_(finished)))
    return int(result.rowcount)  # type: ignore[attr-defined]
