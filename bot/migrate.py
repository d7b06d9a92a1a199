"""Applies the Alembic migrations in migrations/ to a database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# Installed, the migrations ship as bot/migrations (see setup.py); in a checkout they are the
# repository's migrations/ folder.
_INSTALLED = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_DIR = _INSTALLED if _INSTALLED.is_dir() else _INSTALLED.parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`; must be called outside a running event loop."""
    from models.db import is_sqlite, prepare_sqlite_file

    if is_sqlite(database_url):
        prepare_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
