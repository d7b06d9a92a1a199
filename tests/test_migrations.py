"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, bindparam, select, text
from sqlalchemy.engine import Connection

from bot.migrate import downgrade, upgrade
from handlers.engine import FormMeta, meta_of
from models.all import Base
from models.conversations import Conversation
from models.db import create_engine, create_sessionmaker
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


_ROWS = {
    # A send's result is written by outbox id: a message deleted while on the wire (an erasure
    # purges messages naming the person) must not leave its id to the next message.
    "outbox": (
        "INSERT INTO outbox (key, channel, chat_id, text, status, attempts, not_before, "
        "created_at, reply) VALUES (:key, 'telegram', '1', 'x', 'pending', 0, "
        "'2026-12-02', '2026-12-02', 0)"
    ),
    # The inbox worker knows the updates it holds by id: an update recorded just as the newest
    # one was handled (and deleted) must not take its id, or it is taken for one already held.
    "inbox": (
        "INSERT INTO inbox (channel, update_id, chat_id, user_id, payload, status, received_at) "
        "VALUES ('telegram', :key, '1', '1', '{}', 'pending', '2026-12-02')"
    ),
}


@pytest.mark.parametrize("table", sorted(_ROWS))
async def test_ids_are_never_reused_after_a_delete(tmp_path: Path, table: str) -> None:
    """Rows written before the upgrade that made the ids AUTOINCREMENT are kept by it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/ocop.db"
    await asyncio.to_thread(upgrade, url, "0007")
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text(_ROWS[table]), {"key": "a"})
    await asyncio.to_thread(upgrade, url)
    async with engine.begin() as connection:
        await connection.execute(text(_ROWS[table]), {"key": "b"})
        last = await connection.scalar(text(f"SELECT max(id) FROM {table}"))
        await connection.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": last})
        await connection.execute(text(_ROWS[table]), {"key": "c"})
        kept = await connection.scalar(text(f"SELECT count(*) FROM {table}"))
        new = await connection.scalar(text(f"SELECT max(id) FROM {table}"))
    await engine.dispose()
    assert kept == 2  # "a" from before the upgrade, and "c"
    assert new > last


# Forms in progress as the previous versions stored them: their metadata among the answers.
_OLD_FORMS = {
    "completing": {"kind": "new", "product": "Mắm ruốc", "_meta": {"registration": 17}},
    "renewing": {"kind": "reevaluation", "_certificate": 4, "_previous": {"owner": "Nguyễn A"}},
    "returning": {"_registration": 5, "_status": "returned", "_items": ["license"]},
    "plain": {"kind": "new"},
}


async def _upgraded_from(
    engine: Any, url: str, revision: str, chats: dict[str, dict[str, Any]]
) -> dict[str, Conversation]:
    """Conversations written at `revision` (each its flow, answers and, from 0011, meta), the
    schema then upgraded to the newest: what they became."""
    await reset_schema(engine)
    await asyncio.to_thread(upgrade, url, revision)
    columns = sorted({name for row in chats.values() for name in row})
    insert = text(
        "INSERT INTO conversations (channel, chat_id, step, editing, version, updated_at, "
        f"{', '.join(columns)}) VALUES ('telegram', :chat, 'summary', false, 4, "
        f"'2026-12-02 10:00:00', {', '.join(':' + name for name in columns)})"
    ).bindparams(*(bindparam(n, type_=JSON) for n in columns if n in ("answers", "meta")))
    async with engine.begin() as connection:
        for chat, row in chats.items():
            await connection.execute(insert, {"chat": chat, **{n: None for n in columns}, **row})
    await asyncio.to_thread(upgrade, url)
    async with create_sessionmaker(engine)() as session:
        return {c.chat_id: c for c in await session.scalars(select(Conversation))}


@pytest.mark.both_databases
async def test_forms_in_progress_at_the_upgrade_keep_what_they_were_started_for(
    database_url: str,
) -> None:
    """0011 moves the metadata out of the answers of forms left half-way: each still acts on
    its registration or certificate after the upgrade, and its answers are the form's only."""
    engine = create_engine(database_url)
    try:
        old = {chat: {"flow": "register", "answers": a} for chat, a in _OLD_FORMS.items()}
        stored = await _upgraded_from(engine, database_url, "0010", old)
        assert {chat: c.answers for chat, c in stored.items()} == {
            "completing": {"kind": "new", "product": "Mắm ruốc"},
            "renewing": {"kind": "reevaluation"},
            "returning": {},
            "plain": {"kind": "new"},
        }
        assert {chat: meta_of(c) for chat, c in stored.items()} == {
            "completing": FormMeta(registration=17),
            "renewing": FormMeta(certificate=4, previous={"owner": "Nguyễn A"}),
            "returning": FormMeta(registration=5, status="returned", items=["license"]),
            "plain": FormMeta(),
        }
        assert {c.step for c in stored.values()} == {"summary"}
        # Rolled back, the previous version finds its metadata where it kept it.
        await asyncio.to_thread(downgrade, database_url, "0010")
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT chat_id, answers FROM conversations").columns(answers=JSON)
            )
            back = {chat: answers for chat, answers in rows}
        assert back["completing"]["_meta"] == {"registration": 17}
        assert back["returning"] == {
            "_meta": {"registration": 5},
            "_registration": 5,
            "_status": "returned",
            "_items": ["license"],
        }
        assert back["plain"] == {"kind": "new"}
    finally:
        await engine.dispose()


_PASSING_STATE = {  # chat: (flow, answers as 0011's code kept them, meta)
    "asked-to-cancel": ("register", {"kind": "new", "_cancelling": 4}, {"registration": 9}),
    "adding-a-file": (None, {"_dossier": {"r": 12, "i": "license"}}, None),
    "choosing-papers": (None, {"_dossier_ask": {"r": 7, "items": ["label"]}}, None),
    "plain": ("register", {"kind": "new"}, None),
}


@pytest.mark.both_databases
async def test_passing_state_at_the_upgrade_is_kept_out_of_the_answers(database_url: str) -> None:
    """0012 moves a pending "really cancel?", a dossier file waiting for its paper and the papers
    an official is choosing into the conversation's metadata: the answers are the form's only,
    and nothing the chat was in the middle of is lost, either way of the migration."""
    engine = create_engine(database_url)
    try:
        old = {
            chat: {"flow": flow, "answers": answers, "meta": meta}
            for chat, (flow, answers, meta) in _PASSING_STATE.items()
        }
        stored = await _upgraded_from(engine, database_url, "0011", old)
        assert {chat: c.answers for chat, c in stored.items()} == {
            "asked-to-cancel": {"kind": "new"},
            "adding-a-file": {},
            "choosing-papers": {},
            "plain": {"kind": "new"},
        }
        assert {chat: meta_of(c) for chat, c in stored.items()} == {
            "asked-to-cancel": FormMeta(registration=9, cancelling=4),
            "adding-a-file": FormMeta(dossier={"r": 12, "i": "license"}),
            "choosing-papers": FormMeta(asking={"r": 7, "items": ["label"]}),
            "plain": FormMeta(),
        }
        await asyncio.to_thread(downgrade, database_url, "0011")
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT chat_id, answers, meta FROM conversations").columns(
                    answers=JSON, meta=JSON
                )
            )
            back = {chat: (answers, meta) for chat, answers, meta in rows}
        assert back == {chat: (a, m) for chat, (_flow, a, m) in _PASSING_STATE.items()}
    finally:
        await engine.dispose()
