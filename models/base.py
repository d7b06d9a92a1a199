"""Declarative base, naming convention and shared column types for every model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, MetaData, TypeDecorator, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Times are stored in UTC (DESIGN.md §5) and shown in OCOP_TIMEZONE."""
    return dt.datetime.now(dt.UTC)


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME with the same stored text (2026-12-03 07:35:37.806035), written by
    `datetime.isoformat` instead of a %-format of seven fields: a batch binds a dozen times
    per event, and the format was a sixtieth of the conversation benchmark's time."""

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out; SQLite would otherwise hand back naive datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SQLiteDateTime())
        return dialect.type_descriptor(self.impl_instance)

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times are stored in UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


def insert_for(session: AsyncSession) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING on both databases we serve."""
    dialect = session.get_bind().dialect.name
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


async def insert_if_absent(session: AsyncSession, model: type[Base], **values: Any) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row is new.

    Concurrent writers of the same key (two processes on PostgreSQL) wait for each other and
    exactly one wins, instead of one of them failing with an IntegrityError.
    """
    insert = insert_for(session)
    result = await session.execute(insert(model).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def run_alone(session: AsyncSession, name: str) -> bool:
    """Take a transaction-scoped lock named `name`; False when another process holds it.

    With several bot processes on PostgreSQL, a scheduled scan is done by one of them at a time
    (its outbox keys would make a second run harmless, but not free). SQLite serves one process.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    locked = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": name}
    )
    return bool(locked)
