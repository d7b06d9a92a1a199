"""long tasks (export, import, statistics, digest preview) run after the batch that asked for them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "long_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=64), nullable=True),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_long_tasks_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_long_tasks")),
        sa.UniqueConstraint("key", name=op.f("uq_long_tasks_key")),
    )
    with op.batch_alter_table("long_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_long_tasks_queue", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("long_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_long_tasks_queue")
    op.drop_table("long_tasks")
