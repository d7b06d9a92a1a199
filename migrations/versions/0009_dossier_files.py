"""the dossier: files producers send for a registration's checklist items (content in the
store, addressed by digest; one row per registration, item and content)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dossier_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registration_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=12), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=8), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("uploaded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["registrations.id"],
            name=op.f("fk_dossier_files_registration_id_registrations"),
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_user_id"],
            ["users.id"],
            name=op.f("fk_dossier_files_uploaded_by_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_files")),
        sa.UniqueConstraint(
            "registration_id", "item", "digest", name=op.f("uq_dossier_files_registration_id")
        ),
    )
    op.create_index(op.f("ix_dossier_files_registration_id"), "dossier_files", ["registration_id"])
    op.create_index(op.f("ix_dossier_files_digest"), "dossier_files", ["digest"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dossier_files_digest"), table_name="dossier_files")
    op.drop_index(op.f("ix_dossier_files_registration_id"), table_name="dossier_files")
    op.drop_table("dossier_files")
