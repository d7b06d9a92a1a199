"""Zalo Official Account: OAuth tokens (encrypted), each chat's window, every send's outcome;
the outbox keeps what a ZNS template needs

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("access_token", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=False),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_oauth_tokens")),
    )
    op.create_table(
        "zalo_oa_chats",
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("last_interaction_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("following", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_zalo_oa_chats")),
    )
    op.create_table(
        "zalo_oa_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("route", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.String(length=32), nullable=True),
        sa.Column("phone_tail", sa.String(length=4), nullable=True),
        sa.Column("tracking_id", sa.String(length=48), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_zalo_oa_sends_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zalo_oa_sends")),
    )
    with op.batch_alter_table("zalo_oa_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_zalo_oa_sends_quota", ["route", "status", "local_day"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_zalo_oa_sends_outbox_id"), ["outbox_id"])
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("template")
    with op.batch_alter_table("zalo_oa_sends", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_zalo_oa_sends_outbox_id"))
        batch_op.drop_index("ix_zalo_oa_sends_quota")
    op.drop_table("zalo_oa_sends")
    op.drop_table("zalo_oa_chats")
    op.drop_table("oauth_tokens")
