"""personal data: consent records, invite and claim codes stored as hashes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("notice_version", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_consents_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents") as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("consent_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("invites") as batch_op:
        batch_op.alter_column(
            "code",
            new_column_name="code_hash",
            existing_type=sa.String(length=32),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
    # Links already handed out keep working: their codes are replaced by their hashes.
    bind = op.get_bind()
    invites = sa.table("invites", sa.column("code_hash", sa.String(64)))
    for (code,) in bind.execute(sa.select(invites.c.code_hash)).all():
        digest = hashlib.sha256(code.encode()).hexdigest()
        bind.execute(
            invites.update().where(invites.c.code_hash == code).values(code_hash=digest)
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("consent_version")
    with op.batch_alter_table("consents") as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_user_id"))
    op.drop_table("consents")
    # A hash cannot be turned back into its code: the links given out stop working.
    op.execute("DELETE FROM invites")
    with op.batch_alter_table("invites") as batch_op:
        batch_op.alter_column(
            "code_hash",
            new_column_name="code",
            existing_type=sa.String(length=64),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
