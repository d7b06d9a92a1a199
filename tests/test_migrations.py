"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.migrate import downgrade, upgrade
from models.all import Base
from models.db import create_engine
from tests.conftest import reset_schema


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _reset_and_compare(url: str, reset: bool) -> list[Any]:
    engine = create_engine(url)
    try:
        if reset:
            await reset_schema(engine)
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


@pytest.mark.both_databases
async def test_migrations_match_the_models(database_url: str) -> None:
    assert await _reset_and_compare(database_url, reset=True) == []


async def test_migrating_twice_is_harmless(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    assert await _reset_and_compare(database_url, reset=False) == []


@pytest.mark.both_databases
async def test_the_schema_can_be_rolled_back_and_rebuilt(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(downgrade, database_url, "base")
    assert await _reset_and_compare(database_url, reset=False) == []


async def test_outbox_ids_are_never_reused_after_a_delete(tmp_path: Path) -> None:
    """A send's result is written by outbox id: a message deleted while on the wire (an
    erasure purges messages naming the person) must not leave its id to the next message."""
    url = f"sqlite+aiosqlite:///{tmp_path}/ocop.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    row = (
        "INSERT INTO outbox (key, channel, chat_id, text, status, attempts, not_before, "
        "created_at, reply) VALUES (:key, 'telegram', '1', 'x', 'pending', 0, "
        "'2026-12-02', '2026-12-02', 0)"
    )
    async with engine.begin() as connection:
        for key in ("a", "b"):
            await connection.execute(text(row), {"key": key})
        last = await connection.scalar(text("SELECT max(id) FROM outbox"))
        await connection.execute(text("DELETE FROM outbox WHERE id = :id"), {"id": last})
        await connection.execute(text(row), {"key": "c"})
        new = await connection.scalar(text("SELECT id FROM outbox WHERE key = 'c'"))
    await engine.dispose()
    assert new > last
