"""a conversation's flow metadata (the registration it changes, the certificate it renews, the
details it offers to reuse, the status a review sets) in a column of its own, out of the answers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Where forms in progress kept it before: one key of the answers, or (older) several.
_META = "_meta"
_LEGACY = {
    "registration": "_registration",
    "certificate": "_certificate",
    "previous": "_previous",
    "status": "_status",
    "items": "_items",
}
_FORM_META = ("registration", "certificate", "previous")  # 0010's FormMeta
_REVIEW = ("registration", "status", "items")  # 0010's review forms

_conversations = sa.table(
    "conversations",
    sa.column("channel", sa.String),
    sa.column("chat_id", sa.String),
    sa.column("answers", sa.JSON),
    sa.column("meta", sa.JSON),
)


def _loaded(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # a driver that hands JSON back as text
        value = json.loads(value)
    return dict(value or {})


def _split(answers: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form's own answers, and the metadata kept among them."""
    meta = dict(answers.get(_META) or {})
    for name, key in _LEGACY.items():
        if answers.get(key) is not None:
            meta.setdefault(name, answers[key])
    kept = {key: v for key, v in answers.items() if key != _META and key not in _LEGACY.values()}
    return kept, meta


def _as_before(meta: dict[str, Any]) -> dict[str, Any]:
    """Where 0010's code reads it: the forms' FormMeta under one key, a review's own keys."""
    kept = {name: meta[name] for name in _FORM_META if name in meta}
    before = {_META: kept} if kept else {}
    if "status" in meta:
        before.update({_LEGACY[name]: meta[name] for name in _REVIEW if name in meta})
    return before


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("meta", sa.JSON(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_conversations.c.channel, _conversations.c.chat_id, _conversations.c.answers)
    ).all()
    for channel, chat_id, stored in rows:
        answers = _loaded(stored)
        kept, meta = _split(answers)
        if kept == answers:
            continue
        connection.execute(
            _conversations.update()
            .where(_conversations.c.channel == channel, _conversations.c.chat_id == chat_id)
            .values(answers=kept, meta=meta or None)
        )


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            _conversations.c.channel,
            _conversations.c.chat_id,
            _conversations.c.answers,
            _conversations.c.meta,
        ).where(_conversations.c.meta.is_not(None))
    ).all()
    for channel, chat_id, stored, meta in rows:
        loaded = _loaded(meta)
        if not loaded:  # JSON null
            continue
        answers = {**_loaded(stored), **_as_before(loaded)}
        connection.execute(
            _conversations.update()
            .where(_conversations.c.channel == channel, _conversations.c.chat_id == chat_id)
            .values(answers=answers)
        )
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("meta")
