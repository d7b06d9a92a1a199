"""inbox ids never reused on SQLite (AUTOINCREMENT): the worker knows the updates it holds by
id, and an update recorded just as the newest one was handled took its id and was skipped

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's sequences never hand out an id twice
    with op.batch_alter_table(
        "inbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("inbox", recreate="always"):
        pass
