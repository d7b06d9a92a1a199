"""Fixtures: the emulator, a database (SQLite file; PostgreSQL when reachable), the running bot."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator import TelegramEmulator
from bot.settings import Settings
from models.all import Base
from models.db import create_engine
from tests.harness import ADMIN_ID, BotUnderTest

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# PTB 22 warns that RetryAfter.retry_after becomes a timedelta; opt in, as the CLI does.
os.environ.setdefault("PTB_TIMEDELTA", "true")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-postgres", action="store_true", help="skip the PostgreSQL variants")


async def _postgres_reachable(url: str) -> str | None:
    """None when a connection works, else why not."""
    engine = create_engine(url)
    try:
        async with asyncio.timeout(5):
            async with engine.connect():
                return None
    except Exception as error:  # any failure means: not reachable here
        return f"{type(error).__name__}: {error}"
    finally:
        await engine.dispose()


async def _recreate_database(server_url: str, name: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of our own on the server at TEST_DATABASE_URL, so a run never touches (or is
    confused by) whatever else lives in the server's `test` database."""
    if request.config.getoption("--no-postgres"):
        pytest.skip("PostgreSQL variants disabled with --no-postgres")
    server_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)
    problem = asyncio.run(_postgres_reachable(server_url))
    if problem:
        pytest.skip(f"PostgreSQL not reachable at {server_url} ({problem}); set TEST_DATABASE_URL")
    name = f"ocop_test_{os.getpid()}"
    asyncio.run(_recreate_database(server_url, name))
    yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_drop_database(server_url, name))


async def _drop_database(server_url: str, name: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


async def reset_schema(engine: AsyncEngine) -> None:
    """An empty database: on PostgreSQL the whole public schema goes (tables of any version)."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        else:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh SQLite file per test; tests marked `both_databases` also run on PostgreSQL."""
    if getattr(request, "param", "sqlite") == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite+aiosqlite:///{tmp_path}/ocop.db"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run on the SQLite file and on PostgreSQL (when reachable)"
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    db = create_engine(database_url)
    await reset_schema(db)
    async with db.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield db
    await db.dispose()


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    server = TelegramEmulator()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(emulator: TelegramEmulator, database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=emulator.token,
        telegram_api_url=emulator.api_url,
        database_url=database_url,
        ocop_admins=[ADMIN_ID],
        # Test producers answer at once; the per-sender limit has tests of its own.
        ocop_user_burst=10_000,
        ocop_backup_keep=0,  # the daily backup has tests of its own (tests/test_backup.py)
        # Officials' arrival messages would come a minute into a long story, between its
        # steps; tests/test_officials_first_hour.py turns them on and runs the job itself.
        ocop_arrival_notices=False,
    )


@pytest.fixture
async def bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> AsyncIterator[BotUnderTest]:
    running = BotUnderTest(settings, engine, emulator)
    await running.start()
    yield running
    await running.stop()
