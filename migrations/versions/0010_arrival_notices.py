"""officials told of arrivals: the watermark of the status changes already announced, each
official's choice to hear of them, and what a resubmission changed (shown on the review card)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "arrival_marks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_change_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_arrival_marks")),
    )
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("changed_fields", sa.JSON(), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("arrival_notices", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("arrival_notices")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("changed_fields")
    op.drop_table("arrival_marks")
