"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_menus",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("unsolicited", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id", name=op.f("pk_chat_menus")),
    )
    op.create_table(
        "code_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_code_counters")),
    )
    op.create_table(
        "conversations",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("editing", sa.Boolean(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id", name=op.f("pk_conversations")),
    )
    op.create_table(
        "delivery_budget",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_delivery_budget")),
    )
    op.create_table(
        "delivery_chats",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "chat_id", name=op.f("pk_delivery_chats")),
    )
    with op.batch_alter_table("delivery_chats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_chats_next_at"), ["next_at"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("channel_user_id", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column(
            "role",
            sa.Enum("producer", "official", "admin", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=True),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("unreachable_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("channel", "channel_user_id", name=op.f("uq_users_channel")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "digest_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("covered_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_digest_runs_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_runs")),
        sa.UniqueConstraint("user_id", "local_date", name=op.f("uq_digest_runs_user_id")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("document_name", sa.String(length=200), nullable=True),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_outbox_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_chat_queue", ["channel", "chat_id", "status", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_status"), ["status"], unique=False)

    op.create_table(
        "processed_updates",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("update_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_processed_updates_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("channel", "update_id", name=op.f("pk_processed_updates")),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "subject_type",
            sa.Enum(
                "enterprise",
                "cooperative",
                "coop_group",
                "household",
                name="subjecttype",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("representative", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_user_id"], ["users.id"], name=op.f("fk_subjects_owner_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
    )
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subjects_owner_user_id"), ["owner_user_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_subjects_phone"), ["phone"], unique=False)

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "product_group",
            sa.Enum(
                "food",
                "beverage",
                "herbal",
                "handicraft",
                "ornamental",
                "tourism",
                name="productgroup",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("commune_code", sa.String(length=10), nullable=False),
        sa.Column("ecommerce", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_products_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_products_commune_code"), ["commune_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_products_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("star", sa.Integer(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("expiry_date", sa.Date(), nullable=False),
        sa.Column("decision_number", sa.String(length=100), nullable=True),
        sa.Column("issuing_level", sa.String(length=50), nullable=True),
        sa.Column("registration_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_certificates_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificates_expiry_date"), ["expiry_date"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_certificates_product_id"), ["product_id"], unique=False
        )

    op.create_table(
        "invites",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column(
            "role",
            sa.Enum("producer", "official", "admin", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("scope", sa.JSON(), nullable=True),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by_user_id", sa.Integer(), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certificate_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_invites_certificate_id_certificates"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_invites_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["used_by_user_id"], ["users.id"], name=op.f("fk_invites_used_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_invites")),
    )
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "new", "reeval", "upgrade", name="registrationkind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column(
            "target",
            sa.Enum("3", "4", "5", "3to4", "4to5", name="target", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("programme_year", sa.Integer(), nullable=False),
        sa.Column("commune_code", sa.String(length=10), nullable=False),
        sa.Column("commune_input", sa.String(length=200), nullable=True),
        sa.Column("legacy_commune", sa.String(length=200), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column(
            "product_group",
            sa.Enum(
                "food",
                "beverage",
                "herbal",
                "handicraft",
                "ornamental",
                "tourism",
                name="productgroup",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("owner_name", sa.String(length=200), nullable=False),
        sa.Column("subject_name", sa.String(length=200), nullable=False),
        sa.Column(
            "subject_type",
            sa.Enum(
                "enterprise",
                "cooperative",
                "coop_group",
                "household",
                name="subjecttype",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("ecommerce", sa.Boolean(), nullable=False),
        sa.Column("current_star", sa.Integer(), nullable=True),
        sa.Column("certificate_issue_date", sa.Date(), nullable=True),
        sa.Column("certificate_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "accepted",
                "returned",
                "rejected",
                "certified",
                "failed",
                "deferred",
                name="registrationstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("status_note", sa.Text(), nullable=True),
        sa.Column("submitted_by_user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_registrations_certificate_id_certificates"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_registrations_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_registrations_subject_id_subjects")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_user_id"],
            ["users.id"],
            name=op.f("fk_registrations_submitted_by_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
        sa.UniqueConstraint("code", name=op.f("uq_registrations_code")),
    )
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registrations_commune_code"), ["commune_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registrations_product_id"), ["product_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registrations_programme_year"), ["programme_year"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_registrations_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_registrations_subject_id"), ["subject_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registrations_submitted_by_user_id"),
            ["submitted_by_user_id"],
            unique=False,
        )

    # certificates <-> registrations reference each other: this side is added afterwards.
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_certificates_registration_id_registrations"),
            "registrations",
            ["registration_id"],
            ["id"],
        )

    op.create_table(
        "registration_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registration_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "accepted",
                "returned",
                "rejected",
                "certified",
                "failed",
                "deferred",
                name="registrationstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("changed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"],
            ["users.id"],
            name=op.f("fk_registration_status_changes_changed_by_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["registrations.id"],
            name=op.f("fk_registration_status_changes_registration_id_registrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_status_changes")),
    )
    with op.batch_alter_table("registration_status_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registration_status_changes_registration_id"),
            ["registration_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_certificates_registration_id_registrations"), type_="foreignkey"
        )
    with op.batch_alter_table("registration_status_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registration_status_changes_registration_id"))

    op.drop_table("registration_status_changes")
    with op.batch_alter_table("registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registrations_submitted_by_user_id"))
        batch_op.drop_index(batch_op.f("ix_registrations_subject_id"))
        batch_op.drop_index(batch_op.f("ix_registrations_status"))
        batch_op.drop_index(batch_op.f("ix_registrations_programme_year"))
        batch_op.drop_index(batch_op.f("ix_registrations_product_id"))
        batch_op.drop_index(batch_op.f("ix_registrations_commune_code"))

    op.drop_table("registrations")
    op.drop_table("invites")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_product_id"))
        batch_op.drop_index(batch_op.f("ix_certificates_expiry_date"))

    op.drop_table("certificates")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_subject_id"))
        batch_op.drop_index(batch_op.f("ix_products_commune_code"))

    op.drop_table("products")
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subjects_phone"))
        batch_op.drop_index(batch_op.f("ix_subjects_owner_user_id"))

    op.drop_table("subjects")
    op.drop_table("processed_updates")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_status"))
        batch_op.drop_index("ix_outbox_chat_queue")

    op.drop_table("outbox")
    op.drop_table("digest_runs")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_user_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    op.drop_table("users")
    with op.batch_alter_table("delivery_chats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_chats_next_at"))

    op.drop_table("delivery_chats")
    op.drop_table("delivery_budget")
    op.drop_table("conversations")
    op.drop_table("code_counters")
    op.drop_table("chat_menus")
